/* curl_order: an LD_PRELOAD library for test_api.py's CurlGlobal test.
 *
 * It stands in front of libcurl's curl_global_init, curl_global_cleanup and
 * curl_easy_init and of pthread_create, and appends one line per call to
 * the file named by $CURL_ORDER_LOG: the function, then "main" or "thread"
 * for the thread that called it. The test reads the order back: libcurl's
 * global init must come once, from the main thread, before any thread is
 * started and before any handle is made; its cleanup once, at the end. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void note(const char *what)
{
	const char *path = getenv("CURL_ORDER_LOG");
	if (path == NULL)
		return;
	char line[64];
	int n = snprintf(line, sizeof(line), "%s %s\n", what,
	                 (pid_t)syscall(SYS_gettid) == getpid() ? "main" : "thread");
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n)
		abort(); /* a lost line would make the test pass or fail wrongly */
	close(fd);
}

typedef CURLcode global_init_fn(long);
typedef void global_cleanup_fn(void);
typedef CURL *easy_init_fn(void);
typedef int thread_create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

CURLcode curl_global_init(long flags)
{
	global_init_fn *real = (global_init_fn *)dlsym(RTLD_NEXT, "curl_global_init");
	note("curl_global_init");
	return real(flags);
}

void curl_global_cleanup(void)
{
	global_cleanup_fn *real = (global_cleanup_fn *)dlsym(RTLD_NEXT, "curl_global_cleanup");
	note("curl_global_cleanup");
	real();
}

CURL *curl_easy_init(void)
{
	easy_init_fn *real = (easy_init_fn *)dlsym(RTLD_NEXT, "curl_easy_init");
	note("curl_easy_init");
	return real();
}

int pthread_create(pthread_t *restrict t, const pthread_attr_t *restrict attr, void *(*fn)(void *),
                   void *restrict arg)
{
	thread_create_fn *real = (thread_create_fn *)dlsym(RTLD_NEXT, "pthread_create");
	note("pthread_create");
	return real(t, attr, fn, arg);
}
