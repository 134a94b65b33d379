/* The sidecar: the local HTTP API (README, "The local API") on libmicrohttpd, the
 * sync scheduler and the webhook, around one connector. A thin adapter:
 * every route calls a src/connector/ use case. */
#ifndef OPTSYNC_API_API_H
#define OPTSYNC_API_API_H

#include <signal.h>

#include "config/config.h"
#include "util/err.h"

/* Run until *stop is set (SIGTERM/SIGINT): serve the API, run a sync
 * cycle every sync.interval (and soon after a local opt-out), deliver
 * webhooks. Returns 0 after a clean stop. */
int sidecar_run(const struct config *cfg, volatile sig_atomic_t *stop, struct err *e);

#endif
