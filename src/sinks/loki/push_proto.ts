import protobuf from 'protobufjs';

/**
 * Loki's push schema, `pkg/push/push.proto` (package logproto), as Loki publishes it; the gogoproto
 * options only shape Go code and are left out, field numbers and types are Loki's. Kept as text so
 * the compiled exporter carries it without a file beside it.
 */
export const PUSH_PROTO = `
syntax = "proto3";
package logproto;

message PushRequest {
  repeated StreamAdapter streams = 1;
}

message PushResponse {}

message StreamAdapter {
  string labels = 1;
  repeated EntryAdapter entries = 2;
  // hash contains the original hash of the stream.
  uint64 hash = 3;
}

message LabelPairAdapter {
  string name = 1;
  string value = 2;
}

message EntryAdapter {
  google.protobuf.Timestamp timestamp = 1;
  string line = 2;
  repeated LabelPairAdapter structuredMetadata = 3;
  // Only used by Loki to return parsed log lines in query responses.
  repeated LabelPairAdapter parsed = 4;
}
`;

const GOOGLE_TIMESTAMP = `
syntax = "proto3";
package google.protobuf;
message Timestamp {
  int64 seconds = 1;
  int32 nanos = 2;
}
`;

let root: protobuf.Root | null = null;

/** The parsed schema (both files in one root, as protoc would resolve the import). */
export function pushSchema(): { PushRequest: protobuf.Type } {
  if (!root) {
    root = new protobuf.Root();
    protobuf.parse(GOOGLE_TIMESTAMP, root, { keepCase: true });
    protobuf.parse(PUSH_PROTO, root, { keepCase: true });
    root.resolveAll();
  }
  return { PushRequest: root.lookupType('logproto.PushRequest') };
}

export interface PushEntry {
  timestamp: { seconds: number; nanos: number };
  line: string;
  structuredMetadata: { name: string; value: string }[];
}

export interface PushStream {
  labels: string;
  entries: PushEntry[];
}
