/* Helpers shared by the command files. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "state/ledger.h"
#include "util/timefmt.h"

int cli_conn(struct cli *c, bool create, struct conn **out, struct err *e)
{
	int rc = cli_config(c, e);
	if (rc)
		return rc;
	return conn_open(out, c->cfg, create, NULL, e);
}

static void print_text(FILE *f, const cJSON *v, int indent)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		if (cJSON_IsArray(v))
			fprintf(f, "%*s-", indent, "");
		else
			fprintf(f, "%*s%s:", indent, "", it->string);
		if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
			if (cJSON_GetArraySize(it) == 0) {
				fprintf(f, " %s\n", cJSON_IsArray(it) ? "(none)" : "{}");
				continue;
			}
			fputc('\n', f);
			print_text(f, it, indent + 2);
		} else if (cJSON_IsString(it)) {
			fprintf(f, " %s\n", it->valuestring);
		} else if (cJSON_IsNumber(it)) {
			double d = it->valuedouble;
			if (d == (double)(long long)d)
				fprintf(f, " %lld\n", (long long)d);
			else
				fprintf(f, " %g\n", d);
		} else if (cJSON_IsBool(it)) {
			fprintf(f, " %s\n", cJSON_IsTrue(it) ? "yes" : "no");
		} else {
			fprintf(f, " -\n");
		}
	}
}

void cli_print(struct cli *c, int json, const cJSON *doc)
{
	if (doc == NULL)
		return;
	if (json) {
		char *s = cJSON_Print(doc);
		if (s) {
			fprintf(c->out, "%s\n", s);
			free(s);
		}
		return;
	}
	if (cJSON_IsArray(doc) && cJSON_GetArraySize(doc) == 0) {
		fprintf(c->out, "(none)\n");
		return;
	}
	print_text(c->out, doc, 0);
}

static int prompt(const char *what, int echo, char *buf, size_t cap)
{
	FILE *tty = fopen("/dev/tty", "r+");
	if (tty == NULL)
		return -1;
	struct termios old, quiet;
	int fd = fileno(tty);
	fprintf(tty, "%s: ", what);
	fflush(tty);
	if (!echo && tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	char *r = fgets(buf, (int)cap, tty);
	if (!echo) {
		tcsetattr(fd, TCSAFLUSH, &old);
		fputc('\n', tty);
	}
	fclose(tty);
	if (r == NULL)
		return -1;
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

int cli_admin(struct cli *c, struct conn *conn, const char *email, struct conn_actor *who,
              char *namebuf, size_t cap, struct err *e)
{
	(void)c;
	const char *name = getenv("OPTSYNC_ADMIN"), *token = getenv("OPTSYNC_ADMIN_TOKEN");
	char tokbuf[512];
	if ((name == NULL || token == NULL) && isatty(0)) {
		if (name == NULL && prompt("admin name", 1, namebuf, cap) == 0)
			name = namebuf;
		if (token == NULL && prompt("admin token", 0, tokbuf, sizeof(tokbuf)) == 0)
			token = tokbuf;
	}
	if (name != namebuf && name)
		snprintf(namebuf, cap, "%s", name);
	int rc = conn_admin_check(conn, name, token, email, e);
	OPENSSL_cleanse(tokbuf, sizeof(tokbuf));
	if (rc)
		return rc;
	who->origin = LEDGER_ORIGIN_ADMIN;
	who->name = namebuf;
	return 0;
}

int cli_date(const char *opt, const char *s, int64_t *ms, struct err *e)
{
	if (time_parse(s, ms))
		return err_set(e, ERR_USAGE,
		               "--%s '%s' is not an RFC 3339 date-time (2026-11-20T14:05:00Z) or a "
		               "date (2026-11-20)",
		               opt, s);
	return 0;
}

int cli_sha256_file(const char *path, char out[65], struct err *e)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return err_set(e, ERR_USAGE, "--evidence-file %s: cannot open", path);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char buf[65536], h[32];
	unsigned n;
	size_t r;
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while (ok && (r = fread(buf, 1, sizeof(buf), f)) > 0)
		ok = EVP_DigestUpdate(md, buf, r);
	ok = ok && !ferror(f) && EVP_DigestFinal_ex(md, h, &n);
	fclose(f);
	EVP_MD_CTX_free(md);
	if (!ok)
		return err_set(e, ERR_USAGE, "--evidence-file %s: cannot read", path);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
	return 0;
}
