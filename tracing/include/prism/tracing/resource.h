#pragma once
// Resource (what produces telemetry) and instrumentation scope (which library).

#include <optional>
#include <string>
#include <string_view>

#include "prism/tracing/attributes.h"

namespace prism::tracing {

class Resource {
 public:
  Resource() = default;
  explicit Resource(Attributes attributes, std::string schema_url = {})
      : attributes_(std::move(attributes)), schema_url_(std::move(schema_url)) {}

  // The SDK default resource, then OTEL_RESOURCE_ATTRIBUTES (percent-decoded),
  // then `service_name` if non-empty, then OTEL_SERVICE_NAME (which wins, as
  // the OTel resource spec says). Always has service.name, telemetry.sdk.*,
  // host.name and process.pid.
  static Resource FromEnvironment(std::string_view service_name = {});

  // Attributes of `updating` win over this resource's.
  Resource Merge(const Resource& updating) const;

  const Attributes& attributes() const { return attributes_; }
  const std::string& schema_url() const { return schema_url_; }
  const AttributeValue* Get(std::string_view key) const;

 private:
  Attributes attributes_;
  std::string schema_url_;
};

// Parses OTEL_RESOURCE_ATTRIBUTES syntax ("k=v,k2=v2", percent-encoded).
// Returns nullopt (and the whole value is ignored, as the spec says) on error.
std::optional<Attributes> ParseResourceAttributes(std::string_view text);

struct InstrumentationScope {
  std::string name;
  std::string version;
  std::string schema_url;
  Attributes attributes;
};

}  // namespace prism::tracing
