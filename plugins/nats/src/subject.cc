#include "subject.h"

#include <string>

namespace prism::nats {
namespace {

absl::Status Bad(std::string_view what, std::string_view why) {
  return absl::InvalidArgumentError(std::string(what) + " " + std::string(why));
}

absl::Status ValidateSubject(std::string_view s, bool wildcards) {
  if (s.empty()) return Bad("subject", "is empty");
  if (s.size() > kMaxSubjectBytes) {
    return Bad("subject", "is " + std::to_string(s.size()) + " bytes; the limit is " +
                              std::to_string(kMaxSubjectBytes));
  }
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c <= 0x20 || c >= 0x7f) {
      return Bad("subject", "holds a space, control or non-ASCII byte at offset " +
                                std::to_string(i) + " (visible ASCII only)");
    }
  }
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view token = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
    bool last = dot == std::string_view::npos;
    if (token.empty())
      return Bad("subject", "has an empty token (a leading, trailing or double '.')");
    bool has_wild = token.find_first_of("*>") != std::string_view::npos;
    if (has_wild) {
      if (!wildcards) {
        return Bad("subject",
                   "holds a wildcard ('*' or '>'): a message is published to one subject");
      }
      if (token != "*" && token != ">") {
        return Bad("subject", "uses '*' or '>' inside a token; they stand alone between dots");
      }
      if (token == ">" && !last) return Bad("subject", "has '>' before its last token");
    }
    if (last) break;
    start = dot + 1;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePublishSubject(std::string_view subject) {
  return ValidateSubject(subject, false);
}

absl::Status ValidateSubscribeSubject(std::string_view subject) {
  return ValidateSubject(subject, true);
}

absl::Status ValidateQueueGroup(std::string_view g) {
  if (g.empty()) return absl::OkStatus();
  if (g.size() > kMaxQueueGroupBytes) {
    return Bad("queue_group", "is " + std::to_string(g.size()) + " bytes; the limit is " +
                                  std::to_string(kMaxQueueGroupBytes));
  }
  for (unsigned char c : g) {
    if (c <= 0x20 || c >= 0x7f)
      return Bad("queue_group", "holds a space, control or non-ASCII byte");
  }
  return absl::OkStatus();
}

bool IsTemporarySubject(std::string_view subject) { return subject.rfind("_INBOX.", 0) == 0; }

std::string SpanName(std::string_view operation, std::string_view subject) {
  if (IsTemporarySubject(subject)) return std::string(operation);
  return std::string(operation) + " " + std::string(subject);
}

}  // namespace prism::nats
