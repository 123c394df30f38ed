// The composite propagator and OTEL_PROPAGATORS.

#include "prism/tracing/propagation.h"

#include <utility>

#include "prism/tracing/carriers.h"
#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"

namespace prism::tracing {

namespace internal {
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}
}  // namespace internal

namespace {

class CompositePropagator final : public TextMapPropagator {
 public:
  explicit CompositePropagator(std::vector<std::unique_ptr<TextMapPropagator>> propagators)
      : propagators_(std::move(propagators)) {}

  void Inject(const Context& context, TextMapCarrier& carrier) const override {
    for (const auto& p : propagators_) p->Inject(context, carrier);
  }

  Context Extract(const TextMapCarrier& carrier, const Context& base) const override {
    Context context = base;
    for (const auto& p : propagators_) context = p->Extract(carrier, context);
    return context;
  }

  std::vector<std::string> Fields() const override {
    std::vector<std::string> fields;
    for (const auto& p : propagators_) {
      for (std::string& f : p->Fields()) {
        bool seen = false;
        for (const std::string& g : fields) seen = seen || g == f;
        if (!seen) fields.push_back(std::move(f));
      }
    }
    return fields;
  }

 private:
  std::vector<std::unique_ptr<TextMapPropagator>> propagators_;
};

}  // namespace

std::unique_ptr<TextMapPropagator> MakeCompositePropagator(
    std::vector<std::unique_ptr<TextMapPropagator>> propagators) {
  std::vector<std::unique_ptr<TextMapPropagator>> kept;
  for (auto& p : propagators) {
    if (p) kept.push_back(std::move(p));
  }
  return std::make_unique<CompositePropagator>(std::move(kept));
}

std::unique_ptr<TextMapPropagator> PropagatorFromEnvironment() {
  std::string value = env::GetEnum("OTEL_PROPAGATORS").value_or("tracecontext,baggage");
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string::npos) comma = value.size();
    std::string name = env::Trim(std::string_view(value).substr(pos, comma - pos));
    pos = comma + 1;
    if (!name.empty()) names.push_back(std::move(name));
  }

  for (const std::string& name : names) {
    if (name != "none") continue;
    if (names.size() > 1) {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_PROPAGATORS=\"" + value +
                        "\": \"none\" is combined with other propagators; using none");
    }
    return MakeCompositePropagator({});
  }

  std::vector<std::unique_ptr<TextMapPropagator>> propagators;
  bool have_tracecontext = false;
  bool have_baggage = false;
  for (const std::string& name : names) {
    if (name == "tracecontext") {
      if (!have_tracecontext) propagators.push_back(MakeW3CTraceContextPropagator());
      have_tracecontext = true;
    } else if (name == "baggage") {
      if (!have_baggage) propagators.push_back(MakeW3CBaggagePropagator());
      have_baggage = true;
    } else if (name == "b3" || name == "b3multi" || name == "jaeger" || name == "xray" ||
               name == "ottrace") {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_PROPAGATORS: propagator \"" + name + "\" is not supported; skipped");
    } else {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_PROPAGATORS: unknown propagator \"" + name + "\"; skipped");
    }
  }
  if (propagators.size() == 1) return std::move(propagators.front());
  return MakeCompositePropagator(std::move(propagators));
}

}  // namespace prism::tracing
