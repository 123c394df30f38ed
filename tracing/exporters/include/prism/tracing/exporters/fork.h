#pragma once
// fork() support shared by the batch processor and the exporters.

#include <cstdint>

namespace prism::tracing::fork_support {

// Incremented in a child process right after fork(). An exporter that
// remembers the generation it opened its connection in drops (without
// closing through it) a connection inherited from the parent.
uint64_t Generation();

// Installs the process-wide pthread_atfork handlers (idempotent).
void InstallHandlers();

}  // namespace prism::tracing::fork_support
