/*
 * portcullis_notify: sd_notify(3) for Node, one function.
 *
 * Why native: systemd's readiness protocol is one datagram on the AF_UNIX socket named by
 * $NOTIFY_SOCKET, and Node's dgram module speaks only UDP. `systemd-notify` (the program) is racy
 * on systemd 252 (Debian 12): it may exit before systemd reads its cgroup, and the message is then
 * dropped as coming from an unknown process. Sent from the service's own main process, the message
 * is always attributed right. This is small enough to keep beside the relay, in the same build.
 *
 * send(path, message): path is $NOTIFY_SOCKET as given (a leading '@' means the abstract namespace);
 * returns 0, or the errno of the failed socket()/sendto() (the caller logs it once and goes on).
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_MESSAGE 4096

static napi_value notify_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value result;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  char message[MAX_MESSAGE];
  size_t path_len = 0, message_len = 0;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "send(path, message) takes two strings");
    return NULL;
  }
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &path_len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], message, sizeof(message), &message_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "send(path, message) takes two strings");
    return NULL;
  }
  /* A path that filled the buffer was cut short: refuse it rather than send to another socket. */
  if (path_len == 0 || path_len >= sizeof(path) - 1 || message_len >= sizeof(message) - 1) {
    napi_create_int32(env, ENAMETOOLONG, &result);
    return result;
  }

  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path, path_len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0'; /* abstract namespace */
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);

  int err = 0;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = errno;
  } else {
    ssize_t n = sendto(fd, message, message_len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
    if (n < 0) err = errno;
    close(fd);
  }
  napi_create_int32(env, err, &result);
  return result;
}

static napi_value module_init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "send", NAPI_AUTO_LENGTH, notify_send, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "send", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
