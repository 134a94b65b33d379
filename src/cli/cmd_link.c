/* optsync link: mint an unsubscribe link and its two header lines. */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "cli/cli.h"
#include "connector/connector.h"

static int exec_link(struct cli *c, int argc, char **argv, struct err *e)
{
	const char *purpose = NULL, *campaign = NULL;
	int json = 0, npos;
	char *pos[1];
	const struct cli_opt opts[] = {
	    {"purpose", &purpose, NULL}, {"campaign", &campaign, NULL}, {"json", NULL, &json}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 1, &npos, e);
	if (rc)
		return rc;
	if (npos != 1)
		return err_set(e, ERR_USAGE, "link needs one EMAIL");
	if ((rc = cli_config(c, e)))
		return rc;
	struct conn_links *k;
	if ((rc = conn_links_open(c->cfg, &k, e)))
		return rc;
	struct conn_link l;
	rc = conn_link_mint(k, pos[0], purpose, campaign, &l, e);
	conn_links_close(k);
	if (rc)
		return rc;
	if (!json) {
		fprintf(c->out,
		        "%s\n\nAdd these two header lines to the email:\n"
		        "List-Unsubscribe: %s\nList-Unsubscribe-Post: %s\n",
		        l.url, l.list_unsubscribe, CONN_LIST_UNSUBSCRIBE_POST);
		return 0;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "url", l.url);
	cJSON_AddStringToObject(o, "list_unsubscribe", l.list_unsubscribe);
	cJSON_AddStringToObject(o, "list_unsubscribe_post", CONN_LIST_UNSUBSCRIBE_POST);
	if (cJSON_GetArraySize(o) != 3) {
		cJSON_Delete(o);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	cli_print(c, 1, o);
	cJSON_Delete(o);
	return 0;
}

const struct cli_cmd cmd_link = {
    .name = "link",
    .usage = "EMAIL [--purpose P] [--campaign ID] [--json]",
    .summary = "mint the unsubscribe link of an email, with its List-Unsubscribe headers",
    .help = "Prints the link and the two header lines to add to the email (RFC 2369,\n"
            "RFC 8058): List-Unsubscribe: <URL> and List-Unsubscribe-Post:\n"
            "List-Unsubscribe=One-Click. The link carries the email sealed (it cannot be\n"
            "read from the URL), the purpose, the campaign and the time it was minted;\n"
            "it works for unsubscribe.link_lifetime. Needs [unsubscribe] with key_file;\n"
            "writes nothing to the ledger.\n"
            "\n"
            "Options:\n"
            "  --purpose P     opt out of one purpose only (none: all email)\n"
            "  --campaign ID   the campaign, recorded with the opt-out (up to 64 bytes)\n"
            "  --json          print {url, list_unsubscribe, list_unsubscribe_post}\n"
            "\n"
            "Exit status: 0 ok, 2 usage or an invalid email, purpose or campaign,\n"
            "3 config.\n",
    .exec = exec_link,
};
