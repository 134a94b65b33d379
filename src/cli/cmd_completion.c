/* optsync completion bash|zsh: a completion script made from the command
 * table, so that it names exactly the commands and options there are. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* The --options a command's usage names, space-separated. */
static void options_of(const struct cli_cmd *c, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = '\0';
	for (const char *p = c->usage; (p = strstr(p, "--")) != NULL;) {
		size_t n = 2;
		while ((p[n] >= 'a' && p[n] <= 'z') || p[n] == '-')
			n++;
		char opt[64];
		if (n > 2 && n < sizeof(opt)) {
			memcpy(opt, p, n);
			opt[n] = '\0';
			if (strstr(out, opt) == NULL) {
				int w = snprintf(out + o, cap - o, "%s%s", o ? " " : "", opt);
				if (w > 0 && (size_t)w < cap - o)
					o += (size_t)w;
			}
		}
		p += n;
	}
	if (strstr(out, "--help") == NULL)
		snprintf(out + o, cap - o, "%s--help", o ? " " : "");
}

static void bash(FILE *f)
{
	fputs("# bash completion for optsync (optsync completion bash)\n"
	      "_optsync() {\n"
	      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
	      "  case \"$prev\" in\n"
	      "    -c|--config|--from|--evidence-file) COMPREPLY=($(compgen -f -- \"$cur\")); "
	      "return;;\n"
	      "  esac\n"
	      "  local i w cmd=\"\"\n"
	      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
	      "    w=\"${COMP_WORDS[i]}\"\n"
	      "    case \"$w\" in -c|--config) ((i++));; -*) ;; *) cmd=\"${cmd:+$cmd }$w\";; "
	      "esac\n"
	      "  done\n"
	      "  case \"$cmd\" in\n",
	      f);
	/* the first words: commands and groups */
	char first[2048] = "";
	size_t fo = 0;
	for (const struct cli_cmd *const *c = cli_commands; *c; c++) {
		char w[64];
		size_t n = strcspn((*c)->name, " ");
		snprintf(w, sizeof(w), "%.*s", (int)n, (*c)->name);
		char padded[72];
		snprintf(padded, sizeof(padded), " %s ", w);
		char have[2100];
		snprintf(have, sizeof(have), " %s ", first);
		if (strstr(have, padded) == NULL) {
			int k = snprintf(first + fo, sizeof(first) - fo, "%s%s", fo ? " " : "", w);
			if (k > 0 && (size_t)k < sizeof(first) - fo)
				fo += (size_t)k;
		}
	}
	fprintf(f, "    \"\") COMPREPLY=($(compgen -W \"%s -c --help --version\" -- \"$cur\"));;\n",
	        first);
	/* a group's second words */
	for (const struct cli_cmd *const *c = cli_commands; *c; c++) {
		const char *sp = strchr((*c)->name, ' ');
		if (sp == NULL)
			continue;
		int gl = (int)(sp - (*c)->name);
		int seen = 0;
		for (const struct cli_cmd *const *d = cli_commands; d != c; d++)
			seen |= strncmp((*d)->name, (*c)->name, (size_t)gl + 1) == 0;
		if (seen)
			continue;
		fprintf(f, "    %.*s) COMPREPLY=($(compgen -W \"", gl, (*c)->name);
		int k = 0;
		for (const struct cli_cmd *const *d = cli_commands; *d; d++)
			if (strncmp((*d)->name, (*c)->name, (size_t)gl + 1) == 0)
				fprintf(f, "%s%s", k++ ? " " : "", (*d)->name + gl + 1);
		fputs(" --help\" -- \"$cur\"));;\n", f);
	}
	/* each command's options, once its words are typed */
	for (const struct cli_cmd *const *c = cli_commands; *c; c++) {
		char opts[512];
		options_of(*c, opts, sizeof(opts));
		fprintf(f,
		        "    \"%s\"|\"%s \"*) [[ \"$cur\" == -* ]] && COMPREPLY=($(compgen -W "
		        "\"%s\" -- "
		        "\"$cur\"));;\n",
		        (*c)->name, (*c)->name, opts);
	}
	fputs("  esac\n"
	      "}\n"
	      "complete -o default -F _optsync optsync\n",
	      f);
}

static int exec_completion(struct cli *c, int argc, char **argv, struct err *e)
{
	int npos;
	char *pos[1];
	const struct cli_opt opts[] = {{0}};
	int rc = cli_args(argc, argv, opts, pos, 1, &npos, e);
	if (rc)
		return rc;
	if (npos != 1 || (strcmp(pos[0], "bash") != 0 && strcmp(pos[0], "zsh") != 0))
		return err_set(e, ERR_USAGE, "name the shell: bash or zsh");
	if (strcmp(pos[0], "zsh") == 0)
		fputs("#compdef optsync\n"
		      "# zsh completion for optsync (optsync completion zsh): the bash one\n"
		      "autoload -U +X bashcompinit && bashcompinit\n",
		      c->out);
	bash(c->out);
	return fflush(c->out) == 0 ? 0 : err_set(e, ERR_IO, "cannot write the script");
}

const struct cli_cmd cmd_completion = {
    .name = "completion",
    .usage = "bash|zsh",
    .summary = "print a shell completion script",
    .help = "Prints a completion script for the commands and options of this optsync.\n"
            "\n"
            "  bash:  optsync completion bash > /etc/bash_completion.d/optsync\n"
            "         (or, for one shell: source <(optsync completion bash))\n"
            "  zsh:   optsync completion zsh > \"${fpath[1]}/_optsync\"\n"
            "\n"
            "The container image has both installed.\n",
    .exec = exec_completion,
};
