/* Runs a fuzz target over every file of a corpus directory, so that each
 * fuzz target is also an ordinary test (libgit2's fuzzers do the same). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
		buf_free(&b);
		n++;
	}
	closedir(d);
	printf("%d passed, %d failed\n", n, failed);
	return n > 0 && failed == 0 ? 0 : 1;
}
