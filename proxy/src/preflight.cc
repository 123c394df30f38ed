#include "preflight.h"

#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>

#include "prism/grpc_tracing/semconv.h"

namespace prism::proxy {
namespace {

std::string OpenSslError(const char* what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return what;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return std::string(what) + " (" + buf + ")";
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

std::string TlsPairProblem(const std::string& cert_pem, const std::string& key_pem) {
  ERR_clear_error();
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) return "tls.cert_file: " + OpenSslError("no PEM certificate in the file");
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!key) {
    return "tls.key_file: " + OpenSslError("no PEM private key in the file (or it is encrypted)");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return "tls.key_file: the key does not belong to the first certificate of tls.cert_file";
  }
  return "";
}

std::string ListenProblem(const std::string& address) {
  std::string_view a = address;
  if (StartsWith(a, "unix-abstract:")) return "";
  if (StartsWith(a, "unix:")) {
    a.remove_prefix(5);
    if (StartsWith(a, "//")) a.remove_prefix(2);
    std::filesystem::path dir = std::filesystem::path(std::string(a)).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
      return "the directory '" + dir.string() + "' does not exist";
    }
    return "";
  }
  // The form was checked with the config (AddressProblem): host and port.
  const grpc_tracing::Endpoint e = grpc_tracing::ParseTarget(address);
  const std::string& host = e.address;
  const std::string port = std::to_string(e.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
      rc != 0) {
    return "cannot resolve '" + host + "': " + gai_strerror(rc);
  }
  std::string problem;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc = bind(fd, ai->ai_addr, ai->ai_addrlen);
    int err = errno;
    close(fd);
    if (rc == 0) {
      problem.clear();
      break;  // one address that binds is enough, as for gRPC
    }
    problem = std::strerror(err);
  }
  freeaddrinfo(res);
  return problem;
}

}  // namespace prism::proxy
