/* Failures per client address in fixed one-minute windows, in a table of
 * fixed size: memory does not grow with the number of clients. A client
 * pushed out of the table by a busier one starts afresh, which errs on the
 * side of serving: the limit is a brake on guessing, not an accounting. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

#define WINDOW_MS 60000
#define PROBES    8

struct rl_slot {
	uint8_t key[RATELIMIT_KEY_MAX];
	uint8_t klen;
	int64_t window; /* start of the slot's minute; 0: free */
	uint32_t count;
};

struct ratelimit {
	pthread_mutex_t mu;
	uint32_t per_minute;
	size_t n; /* a power of two */
	struct rl_slot slots[];
};

struct ratelimit *ratelimit_new(uint32_t per_minute, size_t slots)
{
	size_t n = 16;
	while (n < slots && n < (1u << 20))
		n <<= 1;
	struct ratelimit *r = calloc(1, sizeof(*r) + n * sizeof(struct rl_slot));
	if (r == NULL)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	r->per_minute = per_minute;
	r->n = n;
	return r;
}

void ratelimit_free(struct ratelimit *r)
{
	if (r == NULL)
		return;
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static uint64_t hash(const uint8_t *k, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	return h;
}

/* The slot of key, or the one to take for it (the stalest of its probes). */
static struct rl_slot *find(struct ratelimit *r, const uint8_t *k, size_t kl, int create,
                            int64_t now)
{
	size_t h = (size_t)hash(k, kl), victim = h & (r->n - 1);
	for (size_t i = 0; i < PROBES; i++) {
		struct rl_slot *s = &r->slots[(h + i) & (r->n - 1)];
		if (s->window && s->klen == kl && memcmp(s->key, k, kl) == 0)
			return s;
		if (r->slots[victim].window > s->window)
			victim = (h + i) & (r->n - 1);
	}
	if (!create)
		return NULL;
	struct rl_slot *s = &r->slots[victim];
	memcpy(s->key, k, kl);
	s->klen = (uint8_t)kl;
	s->window = now - now % WINDOW_MS;
	s->count = 0;
	return s;
}

int ratelimit_blocked(struct ratelimit *r, const void *key, size_t klen, int64_t now)
{
	if (klen > RATELIMIT_KEY_MAX)
		klen = RATELIMIT_KEY_MAX;
	pthread_mutex_lock(&r->mu);
	struct rl_slot *s = find(r, key, klen, 0, now);
	int wait = 0;
	if (s && now - s->window < WINDOW_MS && s->count >= r->per_minute)
		wait = (int)((s->window + WINDOW_MS - now + 999) / 1000);
	pthread_mutex_unlock(&r->mu);
	return wait;
}

void ratelimit_hit(struct ratelimit *r, const void *key, size_t klen, int64_t now)
{
	if (klen > RATELIMIT_KEY_MAX)
		klen = RATELIMIT_KEY_MAX;
	pthread_mutex_lock(&r->mu);
	struct rl_slot *s = find(r, key, klen, 1, now);
	if (now - s->window >= WINDOW_MS) {
		s->window = now - now % WINDOW_MS;
		s->count = 0;
	}
	s->count++;
	pthread_mutex_unlock(&r->mu);
}
