/* The server: listening sockets, libmicrohttpd, request bodies as they arrive. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

struct api {
	struct MHD_Daemon *d;
	struct sidecar *s;
	int fd;
	char *unix_path;
};

struct req {
	struct buf body;
	int too_big;
	int64_t start_us;
};

/* ---- libmicrohttpd plumbing ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	(void)version;
	struct api *a = cls;
	struct req *r = *con_cls;
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		buf_init(&r->body, API_BODY_MAX);
		r->start_us = http_now_us();
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		struct err e;
		if (!r->too_big && buf_append(&r->body, upload, *upload_size, &e))
			r->too_big = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	struct ctx c = {.s = a->s, .con = con, .method = method, .url = url, .route = R_OTHER};
	enum MHD_Result res;
	if (r->too_big) {
		res = http_send_error(con, 413, "the request body is larger than 64 KiB");
		http_count(a->s, NULL, R_OTHER, 413, r->start_us);
		return res;
	}
	if (r->body.len)
		c.body = cJSON_ParseWithLength(r->body.data, r->body.len);
	res = http_route(&c);
	cJSON_Delete(c.body);
	/* the status was decided inside; count it from the response code */
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(con, MHD_CONNECTION_INFO_HTTP_STATUS);
	http_count(a->s, c.client, c.route, ci ? ci->http_status : 0, r->start_us);
	return res;
}

static void on_done(void *cls, struct MHD_Connection *con, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)con;
	(void)toe;
	struct req *r = *con_cls;
	if (r) {
		buf_free(&r->body);
		free(r);
	}
	*con_cls = NULL;
}

void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	const char *event = cls ? cls : "api.http";
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn(event, "%s", msg);
}

int http_listen(const char *spec, const char *key, char **unix_path, struct err *e)
{
	*unix_path = NULL;
	int fd;
	if (strncmp(spec, "unix:", 5) == 0) {
		const char *path = spec + 5;
		struct sockaddr_un sa = {0};
		sa.sun_family = AF_UNIX;
		if (strlen(path) >= sizeof(sa.sun_path))
			return err_set(e, ERR_CONFIG, "%s: socket path too long", key);
		memcpy(sa.sun_path, path, strlen(path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return err_sys(e, ERR_IO, errno, "%s: socket", key);
		unlink(path); /* a stale socket from a previous run */
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0660) != 0 ||
		    listen(fd, 128) != 0) {
			int saved = errno;
			close(fd);
			return err_sys(e, ERR_IO, saved, "%s: cannot listen on %s", key, spec);
		}
		*unix_path = strdup(path);
		return fd;
	}
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl = (size_t)(colon - spec);
	if (hl >= sizeof(host))
		return err_set(e, ERR_CONFIG, "%s: host too long", key);
	memcpy(host, spec, hl);
	host[hl] = '\0';
	char *h = host;
	if (h[0] == '[' && hl > 1 && h[hl - 1] == ']') {
		h[hl - 1] = '\0';
		h++;
	}
	struct addrinfo hints = {0}, *ai;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(h, colon + 1, &hints, &ai);
	if (gai)
		return err_set(e, ERR_CONFIG, "%s %s: %s", key, spec, gai_strerror(gai));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 512) != 0) {
		int saved = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return err_sys(e, ERR_IO, saved, "%s: cannot listen on %s", key, spec);
	}
	freeaddrinfo(ai);
	return fd;
}

int api_start(struct api **out, struct sidecar *s, struct err *e)
{
	*out = NULL;
	struct api *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	a->s = s;
	a->fd = http_listen(s->cfg->api.listen, "api.listen", &a->unix_path, e);
	if (a->fd < 0) {
		free(a);
		return e->code;
	}
	/* a thread per connection: a slow request (an admin check, an export,
	 * a bulk batch) holds up only its own connection, never the
	 * application's suppression checks on the others */
	a->d = MHD_start_daemon(
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
	        MHD_USE_ITC | MHD_USE_ERROR_LOG,
	    0, NULL, NULL, on_request, a,
	    /* the logger first: options before it would log through MHD's own */
	    MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, (void *)"api.http", MHD_OPTION_LISTEN_SOCKET,
	    (MHD_socket)a->fd, MHD_OPTION_THREAD_STACK_SIZE, (size_t)API_THREAD_STACK,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONNECTIONS_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)(128 << 10), MHD_OPTION_NOTIFY_COMPLETED, on_done, a, MHD_OPTION_END);
	if (a->d == NULL) {
		close(a->fd);
		free(a->unix_path);
		free(a);
		return err_set(e, ERR_IO, "cannot start the HTTP server on %s", s->cfg->api.listen);
	}
	log_info("api.listen", "local API on %s", s->cfg->api.listen);
	*out = a;
	return 0;
}

void api_stop(struct api *a)
{
	if (a == NULL)
		return;
	MHD_quiesce_daemon(a->d); /* stop accepting; finish what is in flight */
	MHD_stop_daemon(a->d);
	close(a->fd);
	if (a->unix_path) {
		unlink(a->unix_path);
		free(a->unix_path);
	}
	free(a);
}
