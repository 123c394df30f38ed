#pragma once
// Console exporter: one human-readable line per span, for people, e.g.
//   span "GET /users" SERVER 12.345ms trace=4bf9... span=00f0... parent=- status=ERROR "boom"
//     attrs{http.method="GET" http.status_code=500} events[exception@+1.2ms] links=1
// Written to stderr by default (stdout belongs to the application).

#include <cstdio>
#include <memory>

#include "prism/tracing/processor.h"

namespace prism::tracing {

std::unique_ptr<SpanExporter> MakeConsoleExporter(std::FILE* out = stderr);

// The line the console exporter prints for a span (without a newline).
std::string FormatSpanForConsole(const SpanData& span);

}  // namespace prism::tracing
