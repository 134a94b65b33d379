/* Runs a fuzz target over every file of a corpus directory, so that each
 * fuzz target is also an ordinary test (libgit2's fuzzers do the same).
 * Besides "it did not crash", an oracle: a file named ok_* must be
 * accepted by the parser under test (fuzz_accepts() says 1) and a file
 * named bad_* refused (0). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Each target: 1 when the parser it fuzzes accepts data, 0 when not. */
int fuzz_accepts(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	DIR *d = opendir(argv[1]);
	if (d == NULL) {
		perror(argv[1]);
		return 1;
	}
	int n = 0, failed = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		int len = snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);
		if (len < 0 || (size_t)len >= sizeof(path))
			continue;
		struct buf b;
		struct err e;
		if (file_read_all(path, 16u << 20, &b, &e)) {
			fprintf(stderr, "%s\n", e.msg);
			failed++;
			continue;
		}
		LLVMFuzzerTestOneInput((const uint8_t *)b.data, b.len);
		if (getenv("FUZZ_ORACLE_LIST")) /* what the parser makes of each file */
			printf("%s %s\n",
			       fuzz_accepts((const uint8_t *)b.data, b.len) ? "accepted"
			                                                    : "refused ",
			       de->d_name);
		int want = strncmp(de->d_name, "ok_", 3) == 0    ? 1
		           : strncmp(de->d_name, "bad_", 4) == 0 ? 0
		                                                 : -1;
		if (want >= 0 && fuzz_accepts((const uint8_t *)b.data, b.len) != want) {
			fprintf(stderr, "%s: %s, but it is named %s\n", path,
			        want ? "refused" : "accepted", want ? "ok_*" : "bad_*");
			failed++;
		}
		buf_free(&b);
		n++;
	}
	closedir(d);
	printf("%d passed, %d failed\n", n, failed);
	return n > 0 && failed == 0 ? 0 : 1;
}
