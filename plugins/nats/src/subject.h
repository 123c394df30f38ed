#pragma once
// Subject and queue-group rules of prism-plugin-nats (plugins/nats/README.md,
// docs/api.md "PubSub"): what a client may name, checked before anything
// reaches NATS. No NATS dependency, so it is unit tested on its own.

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace prism::nats {

inline constexpr size_t kMaxSubjectBytes = 256;
inline constexpr size_t kMaxQueueGroupBytes = 128;
// Default of --max-data-bytes: the data of one message. Well under
// nats-server's default max_payload (1 MiB, headers included).
inline constexpr size_t kDefaultMaxDataBytes = 512 * 1024;

// 1..kMaxSubjectBytes bytes of visible ASCII (0x21-0x7e), tokens separated
// by '.', no empty token. Publish: no '*' or '>' anywhere. Subscribe: '*'
// only as a whole token, '>' only as the whole last token.
// INVALID_ARGUMENT with a message naming the problem.
absl::Status ValidatePublishSubject(std::string_view subject);
absl::Status ValidateSubscribeSubject(std::string_view subject);
// "" (no queue group), or 1..kMaxQueueGroupBytes visible ASCII characters.
absl::Status ValidateQueueGroup(std::string_view group);

// `_INBOX.` subjects are temporary (request/reply inboxes): never in span names.
bool IsTemporarySubject(std::string_view subject);
// The span name "{operation} {subject}", or "{operation}" alone for a
// temporary subject (semconv: temporary destinations are left out).
std::string SpanName(std::string_view operation, std::string_view subject);

}  // namespace prism::nats
