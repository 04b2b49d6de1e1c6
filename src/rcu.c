/* SPDX-License-Identifier: MIT */
/*
 * rcu.c - RCU thread registration (the slow path of pkv__rcu_enter(), see rcu.h) and the
 * fork handlers of liburcu's call_rcu workers.
 */
#include <pthread.h>
#include <stdbool.h>

#include "rcu.h"

#ifdef PKV_TSAN
char pkv__tsan_gp_token; /* the one token of the ThreadSanitizer shim (rcu.h) */
#endif

__thread bool pkv__rcu_registered __attribute__((tls_model("initial-exec")));
static pthread_key_t rcu_key;
static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;

static void rcu_thread_exit(void *unused)
{
	(void)unused;
	if (pkv__rcu_registered) {
		urcu_memb_unregister_thread();
		pkv__rcu_registered = false;
	}
}

static void rcu_key_make(void)
{
	(void)pthread_key_create(&rcu_key, rcu_thread_exit);
	/*
	 * liburcu's call_rcu worker threads do not survive fork(): without these handlers a child
	 * that uses pkv queues callbacks no thread will run (and finds the queues half-updated if a
	 * worker was mid-operation). With them, the workers pause across the fork and the child
	 * gets fresh ones. Handles opened before the fork stay the parent's (see pkv.h).
	 */
	(void)pthread_atfork(urcu_memb_call_rcu_before_fork, urcu_memb_call_rcu_after_fork_parent,
			     urcu_memb_call_rcu_after_fork_child);
}

void pkv__rcu_register_slow(void)
{
	pthread_once(&rcu_key_once, rcu_key_make);
	urcu_memb_register_thread();
	pkv__rcu_registered = true;
	/* A non-NULL value makes the key's destructor run at thread exit. */
	(void)pthread_setspecific(rcu_key, (void *)1);
}

void pkv__rcu_unregister(void)
{
	if (pkv__rcu_registered) {
		urcu_memb_unregister_thread();
		pkv__rcu_registered = false;
		(void)pthread_setspecific(rcu_key, NULL);
	}
}
