// Imported first by the CLI, before anything that may load an AWS SDK client: on Node 20 the SDK
// prints a 9-line, non-JSON NodeVersionSupportWarning on stderr, which breaks JSON-lines log
// readers. Worker threads inherit this environment.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
export {};
