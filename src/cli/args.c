#include <string.h>

#include "cli/cli.h"

static const struct cli_opt *find_opt(const struct cli_opt *opts, const char *name, size_t len)
{
	for (const struct cli_opt *o = opts; o && o->name; o++)
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

int cli_args(int argc, char **argv, const struct cli_opt *opts, char **pos, int maxpos, int *npos,
             struct err *e)
{
	*npos = 0;
	int only_pos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (*npos == maxpos)
				return err_set(e, ERR_USAGE, "unexpected argument '%s'", a);
			pos[(*npos)++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (a[1] != '-')
			return err_set(e, ERR_USAGE, "unknown option '%s'", a);
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct cli_opt *o = find_opt(opts, name, len);
		if (o == NULL)
			return err_set(e, ERR_USAGE, "unknown option '--%.*s'", (int)len, name);
		if (o->value == NULL) {
			if (eq)
				return err_set(e, ERR_USAGE, "option '--%s' takes no value",
				               o->name);
			*o->set = 1;
			continue;
		}
		if (eq) {
			*o->value = eq + 1;
		} else {
			if (i + 1 >= argc)
				return err_set(e, ERR_USAGE, "option '--%s' needs a value",
				               o->name);
			*o->value = argv[++i];
		}
		if (o->set)
			*o->set = 1;
	}
	return 0;
}
