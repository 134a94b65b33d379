/* Helpers shared by the command files. */
#include <cjson/cJSON.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "util/timefmt.h"

int cli_conn(struct cli *c, bool create, struct conn **out, struct err *e)
{
	int rc = cli_config(c, e);
	if (rc)
		return rc;
	return conn_open(out, c->cfg, create, NULL, e);
}

/* A number as people read it: integers whole, others with up to six
 * decimals, never in exponent form. */
static void print_number(FILE *f, double d)
{
	if (d == (double)(long long)d && d > -9007199254740992.0 && d < 9007199254740992.0) {
		fprintf(f, "%lld", (long long)d);
		return;
	}
	char b[64];
	int n = snprintf(b, sizeof(b), "%.6f", d);
	if (n < 0 || (size_t)n >= sizeof(b)) {
		fprintf(f, "%.0f", d);
		return;
	}
	while (n > 0 && b[n - 1] == '0')
		b[--n] = '\0';
	if (n > 0 && b[n - 1] == '.')
		b[--n] = '\0';
	fputs(b, f);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t sl = strlen(s), xl = strlen(suffix);
	return sl >= xl && strcmp(s + sl - xl, suffix) == 0;
}

static bool is_bytes(const char *key)
{
	return ends_with(key, "_bytes") || ends_with(key, "_size");
}

/* A scalar, with its unit where the key names one. */
static void print_scalar(FILE *f, const char *key, const cJSON *v)
{
	if (cJSON_IsString(v)) {
		fputs(v->valuestring, f);
	} else if (cJSON_IsNumber(v)) {
		print_number(f, v->valuedouble);
		if (key && ends_with(key, "_seconds"))
			fputs(" s", f);
		else if (key && is_bytes(key) && v->valuedouble >= 1024.0 * 1024.0)
			fprintf(f, " bytes (%.1f MiB)", v->valuedouble / (1024.0 * 1024.0));
		else if (key && is_bytes(key))
			fputs(" bytes", f);
	} else if (cJSON_IsBool(v)) {
		fputs(cJSON_IsTrue(v) ? "yes" : "no", f);
	} else {
		fputs("-", f);
	}
}

static void print_array(FILE *f, const cJSON *a, int indent);

/* An object's members as aligned "key: value" lines at indent; the first
 * line starts with first (the "- " of a list item) when given. */
static void print_object(FILE *f, const cJSON *o, int indent, const char *first)
{
	int width = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, o)
	{
		int kl = (int)strlen(it->string);
		if (kl > width)
			width = kl;
	}
	int i = 0;
	cJSON_ArrayForEach(it, o)
	{
		if (i++ == 0 && first)
			fprintf(f, "%*s%s", indent - (int)strlen(first), "", first);
		else
			fprintf(f, "%*s", indent, "");
		fprintf(f, "%s:", it->string);
		bool nested = cJSON_IsObject(it) || cJSON_IsArray(it);
		if (nested && cJSON_GetArraySize(it) == 0) {
			fprintf(f, "%*s (none)\n", width - (int)strlen(it->string), "");
		} else if (cJSON_IsObject(it)) {
			fputc('\n', f);
			print_object(f, it, indent + 2, NULL);
		} else if (cJSON_IsArray(it)) {
			fputc('\n', f);
			print_array(f, it, indent + 2);
		} else {
			fprintf(f, "%*s ", width - (int)strlen(it->string), "");
			print_scalar(f, it->string, it);
			fputc('\n', f);
		}
	}
}

/* An array as "- item" lines; objects in it as aligned blocks. */
static void print_array(FILE *f, const cJSON *a, int indent)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, a)
	{
		if (cJSON_IsObject(it) && cJSON_GetArraySize(it) > 0) {
			print_object(f, it, indent + 2, "- ");
		} else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) > 0) {
			fprintf(f, "%*s-\n", indent, "");
			print_array(f, it, indent + 2);
		} else if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
			fprintf(f, "%*s- (none)\n", indent, "");
		} else {
			fprintf(f, "%*s- ", indent, "");
			print_scalar(f, NULL, it);
			fputc('\n', f);
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
	if ((cJSON_IsArray(doc) || cJSON_IsObject(doc)) && cJSON_GetArraySize(doc) == 0)
		fprintf(c->out, "(none)\n");
	else if (cJSON_IsArray(doc))
		print_array(c->out, doc, 0);
	else if (cJSON_IsObject(doc))
		print_object(c->out, doc, 0, NULL);
	else {
		print_scalar(c->out, NULL, doc);
		fputc('\n', c->out);
	}
}

int cli_print_doc(struct cli *c, int json, int rc, cJSON *doc)
{
	if (rc == 0)
		cli_print(c, json, doc);
	cJSON_Delete(doc);
	return rc;
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
	int rc = conn_admin_actor(conn, name, token, email, who, namebuf, cap, e);
	OPENSSL_cleanse(tokbuf, sizeof(tokbuf));
	return rc;
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

const struct conn_actor *cli_operator(void)
{
	static char name[64];
	static struct conn_actor who = {CONN_ORIGIN_LOCAL, name};
	if (name[0])
		return &who;
	const char *op = getenv("OPTSYNC_OPERATOR");
	bool ok = op && op[0] && strlen(op) < sizeof(name);
	for (const char *p = op; ok && *p; p++)
		ok = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
	if (ok) {
		snprintf(name, sizeof(name), "%s", op);
		return &who;
	}
	struct passwd *pw = getpwuid(geteuid());
	if (pw && pw->pw_name && pw->pw_name[0])
		snprintf(name, sizeof(name), "%.63s", pw->pw_name);
	else
		snprintf(name, sizeof(name), "uid %u", (unsigned)geteuid());
	return &who;
}
