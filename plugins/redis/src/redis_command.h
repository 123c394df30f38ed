#pragma once
// The pure parts of the redis plugin, apart from the network: how a
// (namespace, key) becomes a Redis key, how a command is rendered into
// db.query.text, and what a Redis error reply means as a gRPC status.

#include <grpcpp/support/status.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace prism::redis {

// The Redis key of (namespace, key): "<decimal byte length of ns>:<ns>:<key>",
// e.g. ("orders", "a") -> "6:orders:a". The length prefix makes the mapping
// injective for any bytes in either part (a namespace containing ':' cannot
// collide with another split of the same bytes), and keys of one namespace
// share the prefix, so `SCAN 0 MATCH 6:orders:*` lists them.
std::string RedisKey(std::string_view ns, std::string_view key);

// One argument in redis-cli syntax, as MONITOR prints it: bare when it is
// non-empty printable ASCII without space, quotes or backslash; otherwise in
// double quotes with \\ \" \n \r \t \a \b and \xHH escapes. The result is
// always ASCII (valid UTF-8 for OTLP), whatever bytes the argument holds.
std::string QuoteArg(std::string_view arg);

// db.query.text is at most this many bytes; arguments past it are summarised
// as "[N other arguments]" (the OpenTelemetry JS redis-common form).
inline constexpr size_t kMaxQueryTextBytes = 1024;

// A command as sent: argv[0] is the command name. `value_args` says which
// arguments are values (rendered "?", never recorded): for SET the third,
// for MSET every second one from the third.
enum class ValueArgs { kNone, kThird, kEverySecondFromThird };
std::string QueryText(const std::vector<std::string_view>& argv, ValueArgs values);

// The error prefix of a Redis error reply ("WRONGTYPE Operation against ..."
// -> "WRONGTYPE"); "ERR" when the reply has none.
std::string_view ErrorPrefix(std::string_view error);

// The gRPC status for an error reply to `command`: OOM -> RESOURCE_EXHAUSTED;
// LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, READONLY -> UNAVAILABLE;
// NOAUTH, WRONGPASS, NOPERM, WRONGTYPE -> FAILED_PRECONDITION; others ->
// INTERNAL. The message always carries Redis's own text.
grpc::Status StatusForErrorReply(std::string_view command, std::string_view error);

}  // namespace prism::redis
