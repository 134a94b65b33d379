/* optsync run */
#include <signal.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int exec_run(struct cli *c, int argc, char **argv, struct err *e)
{
	int npos;
	char *pos[1];
	const struct cli_opt opts[] = {{0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	if ((rc = cli_config(c, e)))
		return rc;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* logs go to stderr; there is no file to reopen, so SIGHUP is ignored */
	signal(SIGHUP, SIG_IGN);
	return sidecar_run(c->cfg, &stop_flag, e);
}

const struct cli_cmd cmd_run = {
    .name = "run",
    .usage = "",
    .summary = "the sidecar: local API, a sync cycle every sync.interval, webhooks",
    .help = "Serves the local HTTP API on api.listen (the bearer token from\n"
            "api.token_file or OPTSYNC_API_TOKEN), runs a sync cycle every\n"
            "sync.interval (with jitter, sooner after a local change, backing off\n"
            "while cycles fail), and delivers each change to [webhook] when it is set.\n"
            "SIGTERM or SIGINT: stop accepting requests, finish what is in flight,\n"
            "exit 0. Logs go to standard error.\n",
    .exec = exec_run,
};

static int exec_healthcheck(struct cli *c, int argc, char **argv, struct err *e)
{
	int npos, ready = 0;
	char *pos[1];
	const struct cli_opt opts[] = {{"ready", NULL, &ready}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	if ((rc = cli_config(c, e)))
		return rc;
	return api_probe(c->cfg, ready, e);
}

const struct cli_cmd cmd_healthcheck = {
    .name = "healthcheck",
    .usage = "[--ready]",
    .summary = "ask the running optsync whether it is alive (or ready); for probes",
    .help = "GETs /healthz (with --ready: /readyz) from the optsync run serving\n"
            "api.listen: a TCP address (a wildcard one on 127.0.0.1) or a unix: socket.\n"
            "With OPTSYNC_HEALTH_PORT set, it asks 127.0.0.1 on that port instead.\n"
            "Ready means the local API and its ledger answer: a Salesforce outage does\n"
            "not make optsync unready (optsync status and /v1/status show the sync's\n"
            "health). The container image's HEALTHCHECK runs this command.\n"
            "\n"
            "Options:\n"
            "  --ready   ask /readyz instead of /healthz\n"
            "\n"
            "Exit status: 0 answered 200 within 3 s, 1 not, 3 config.\n",
    .exec = exec_healthcheck,
};
