/* The sidecar: the local HTTP API (README, "The local API") on libmicrohttpd, the
 * sync scheduler and the webhook, around one connector. A thin adapter:
 * every route calls a src/connector/ use case. */
#ifndef OPTSYNC_API_API_H
#define OPTSYNC_API_API_H

#include <signal.h>
#include <stdbool.h>

#include "config/config.h"
#include "util/err.h"

/* Run until *stop is set (SIGTERM/SIGINT): serve the API, run a sync
 * cycle every sync.interval (and soon after a local opt-out), deliver
 * webhooks. Returns 0 after a clean stop. */
int sidecar_run(const struct config *cfg, volatile sig_atomic_t *stop, struct err *e);

/* Ask a running optsync whether it is alive (GET /healthz) or ready (GET
 * /readyz), on api.listen (a TCP address, a wildcard one on loopback, or a
 * unix: socket), or on 127.0.0.1:$OPTSYNC_HEALTH_PORT when that is set.
 * 0 on HTTP 200 within 3 s; ERR_RETRY naming the address otherwise;
 * ERR_CONFIG for a bad OPTSYNC_HEALTH_PORT. */
int api_probe(const struct config *cfg, bool ready, struct err *e);

#endif
