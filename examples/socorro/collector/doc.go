// Package collector is the crash collector of the Socorro demo: an HTTP handler for the
// Breakpad/Crashpad crash submission protocol (POST /submit) as Mozilla's collector, Antenna,
// speaks it, so real crash reporters can submit to it unchanged.
//
// A submission is multipart/form-data, optionally gzip-compressed as a whole
// (Content-Encoding: gzip). Annotations come as text parts (one per annotation) or as one JSON
// object in an application/json part (named "extra" by the clients); dumps come as binary parts
// (application/octet-stream or with a filename), the crashing process's minidump named
// "upload_file_minidump" and others after it. The collector answers
//
//   - 200 "CrashID=bp-<crash ID>" once the [Store] has the crash;
//   - 200 "Discarded=rule_<name>" when a throttle rule rejected it;
//   - 400 "Discarded=malformed_<reason>" for a malformed submission (see the Reason constants);
//   - 413 when the body is larger than the limit after decompression;
//   - 500 when the store failed: the client keeps the report and retries;
//   - 503 "Error=overloaded" with Retry-After, before reading the report, when the bytes of the
//     submissions in flight fill [Config.MaxInFlightBytes]: overload becomes back-pressure on
//     the clients, which send the report again later.
//
// Parsing ([Parse]), crash IDs ([NewCrashID]) and throttling ([Throttler]) are plain code without
// I/O; [Handler] is the thin HTTP driver around them.
package collector
