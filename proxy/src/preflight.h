#pragma once
// Checks made before the proxy starts its plugins, so that a certificate
// that does not load or an address that cannot be bound is reported
// precisely ("Address already in use"), not as gRPC's failure to start a
// server after the plugins were launched for nothing.

#include <string>

namespace prism::proxy {

// What is wrong with a PEM certificate chain and private key pair ("" when
// nothing is): unparsable PEM, no certificate, or a key that is not the
// certificate's.
std::string TlsPairProblem(const std::string& cert_pem, const std::string& key_pem);

// Why `address` (as in the config's `listen`) cannot be bound now, or "".
// TCP: resolves the host and binds the port once (without SO_REUSEPORT, so a
// port another server holds is reported as in use); port 0 always binds.
// Unix sockets: the directory must exist.
std::string ListenProblem(const std::string& address);

}  // namespace prism::proxy
