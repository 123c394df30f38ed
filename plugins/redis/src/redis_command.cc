#include "redis_command.h"

namespace prism::redis {

std::string RedisKey(std::string_view ns, std::string_view key) {
  std::string out = std::to_string(ns.size());
  out.reserve(out.size() + ns.size() + key.size() + 2);
  out.push_back(':');
  out.append(ns);
  out.push_back(':');
  out.append(key);
  return out;
}

std::string QuoteArg(std::string_view arg) {
  bool bare = !arg.empty();
  for (unsigned char c : arg) {
    if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '\'') {
      bare = false;
      break;
    }
  }
  if (bare) return std::string(arg);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(arg.size() + 2);
  out.push_back('"');
  for (unsigned char c : arg) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\a':
        out += "\\a";
        break;
      case '\b':
        out += "\\b";
        break;
      default:
        if (c < ' ' || c >= 0x7f) {
          out += "\\x";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string QueryText(const std::vector<std::string_view>& argv, ValueArgs values) {
  std::string out;
  for (size_t i = 0; i < argv.size(); ++i) {
    bool is_value = (values == ValueArgs::kThird && i == 2) ||
                    (values == ValueArgs::kEverySecondFromThird && i >= 2 && i % 2 == 0);
    std::string arg = is_value ? std::string("?") : QuoteArg(argv[i]);
    // Room for the summary of what would follow.
    std::string rest = " [" + std::to_string(argv.size() - i) + " other arguments]";
    size_t need = (out.empty() ? 0 : 1) + arg.size();
    bool last = i + 1 == argv.size();
    if (out.size() + need + (last ? 0 : rest.size()) > kMaxQueryTextBytes && i > 0) {
      out += rest;
      return out;
    }
    if (!out.empty()) out.push_back(' ');
    out += arg;
  }
  return out;
}

std::string_view ErrorPrefix(std::string_view error) {
  size_t end = 0;
  while (end < error.size() && end < 32) {
    char c = error[end];
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) break;
    ++end;
  }
  // A prefix is an upper-case word followed by a space or the end.
  if (end == 0 || (end < error.size() && error[end] != ' ')) return "ERR";
  return error.substr(0, end);
}

grpc::Status StatusForErrorReply(std::string_view command, std::string_view error) {
  std::string_view prefix = ErrorPrefix(error);
  std::string msg = "redis ";
  msg.append(command).append(": ").append(error.empty() ? "error reply without text" : error);
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  if (prefix == "OOM") {
    code = grpc::StatusCode::RESOURCE_EXHAUSTED;
  } else if (prefix == "LOADING" || prefix == "BUSY" || prefix == "MASTERDOWN" ||
             prefix == "TRYAGAIN" || prefix == "CLUSTERDOWN" || prefix == "READONLY" ||
             prefix == "MISCONF") {
    code = grpc::StatusCode::UNAVAILABLE;
  } else if (prefix == "NOAUTH" || prefix == "WRONGPASS" || prefix == "NOPERM" ||
             prefix == "WRONGTYPE") {
    code = grpc::StatusCode::FAILED_PRECONDITION;
  }
  return grpc::Status(code, msg);
}

}  // namespace prism::redis
