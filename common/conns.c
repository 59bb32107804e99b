/*
 * conns.c - admitted connections and the sweep of conns.h. Uses the
 * kernel's struct tcp_info from <linux/tcp.h> for the socket's state, so it
 * includes no <netinet/tcp.h>.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>

#include "failback/clock.h"
#include "failback/conns.h"

/* Both ends of a TCP connection, as the sweep and NNG see them. */
typedef struct conn_key {
	uint16_t lport, rport; /* host order */
	uint8_t  family;       /* 4 or 6 */
	uint8_t  addr[16];     /* remote, network order */
} conn_key;

typedef struct admitted {
	uint32_t pipe;
	conn_key key;
} admitted;

static pthread_mutex_t adm_mtx = PTHREAD_MUTEX_INITIALIZER;
static admitted       *adm;
static size_t          nadm, capadm;

static int
key_from_nng(const nng_sockaddr *loc, const nng_sockaddr *rem, conn_key *k)
{
	memset(k, 0, sizeof(*k));
	if (rem->s_family == NNG_AF_INET && loc->s_family == NNG_AF_INET) {
		k->family = 4;
		k->lport  = ntohs(loc->s_in.sa_port);
		k->rport  = ntohs(rem->s_in.sa_port);
		memcpy(k->addr, &rem->s_in.sa_addr, 4);
	} else if (rem->s_family == NNG_AF_INET6 && loc->s_family == NNG_AF_INET6) {
		k->family = 6;
		k->lport  = ntohs(loc->s_in6.sa_port);
		k->rport  = ntohs(rem->s_in6.sa_port);
		memcpy(k->addr, rem->s_in6.sa_addr, 16);
	} else {
		return -1;
	}
	return 0;
}

static int
key_from_fd(int fd, conn_key *k)
{
	struct sockaddr_storage l, r;
	socklen_t               ll = sizeof(l), rl = sizeof(r);

	memset(k, 0, sizeof(*k));
	if (getsockname(fd, (struct sockaddr *)&l, &ll) != 0 ||
	    getpeername(fd, (struct sockaddr *)&r, &rl) != 0 || l.ss_family != r.ss_family)
		return -1;
	if (l.ss_family == AF_INET) {
		k->family = 4;
		k->lport  = ntohs(((struct sockaddr_in *)&l)->sin_port);
		k->rport  = ntohs(((struct sockaddr_in *)&r)->sin_port);
		memcpy(k->addr, &((struct sockaddr_in *)&r)->sin_addr, 4);
	} else if (l.ss_family == AF_INET6) {
		k->family = 6;
		k->lport  = ntohs(((struct sockaddr_in6 *)&l)->sin6_port);
		k->rport  = ntohs(((struct sockaddr_in6 *)&r)->sin6_port);
		memcpy(k->addr, &((struct sockaddr_in6 *)&r)->sin6_addr, 16);
	} else {
		return -1;
	}
	return 0;
}

static int
key_eq(const conn_key *a, const conn_key *b)
{
	return a->lport == b->lport && a->rport == b->rport && a->family == b->family &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

void
fb_conns_pipe_event(nng_pipe p, nng_pipe_ev ev)
{
	uint32_t id = (uint32_t)nng_pipe_id(p);

	if (ev == NNG_PIPE_EV_ADD_POST) {
		nng_sockaddr loc, rem;
		conn_key     k;

		if (nng_pipe_get_addr(p, NNG_OPT_LOCADDR, &loc) != 0 ||
		    nng_pipe_get_addr(p, NNG_OPT_REMADDR, &rem) != 0 ||
		    key_from_nng(&loc, &rem, &k) != 0)
			return;
		pthread_mutex_lock(&adm_mtx);
		if (nadm == capadm) {
			size_t    cap = capadm ? capadm * 2 : 64;
			admitted *n   = realloc(adm, cap * sizeof(*n));

			if (n == NULL) { /* unlisted: the sweep may drop it after the timeout */
				pthread_mutex_unlock(&adm_mtx);
				return;
			}
			adm    = n;
			capadm = cap;
		}
		adm[nadm++] = (admitted){id, k};
		pthread_mutex_unlock(&adm_mtx);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		pthread_mutex_lock(&adm_mtx);
		for (size_t i = 0; i < nadm; i++)
			if (adm[i].pipe == id) {
				adm[i] = adm[--nadm];
				break;
			}
		pthread_mutex_unlock(&adm_mtx);
	}
}

static int
is_admitted(const conn_key *k)
{
	int found = 0;

	pthread_mutex_lock(&adm_mtx);
	for (size_t i = 0; i < nadm && !found; i++)
		found = key_eq(&adm[i].key, k);
	pthread_mutex_unlock(&adm_mtx);
	return found;
}

/* What the sweep saw of each descriptor, indexed by it. */
typedef struct seen {
	conn_key key;
	uint64_t first_ms;
	unsigned sweep; /* the sweep that last saw it; 0: never */
} seen;

static seen    *seens;
static size_t   nseens;
static unsigned sweeps;

typedef struct pending {
	int      fd;
	uint16_t port;
	uint32_t quiet_ms; /* since its peer last sent a byte (or connected) */
} pending;

/* Quietest first: a handshake in progress is never quiet for long. */
static int
by_quiet(const void *a, const void *b)
{
	const pending *x = a, *y = b;

	return x->quiet_ms > y->quiet_ms ? -1 : x->quiet_ms < y->quiet_ms ? 1 : x->fd - y->fd;
}

static int
port_listed(const int *ports, size_t nports, uint16_t port)
{
	for (size_t i = 0; i < nports; i++)
		if (ports[i] == (int)port)
			return 1;
	return 0;
}

/* A listening socket on one of ports: note it and its accept queue. */
static void
note_listener(int fd, const int *ports, size_t nports, fb_conns_listener *ls)
{
	struct sockaddr_storage l;
	socklen_t               ll = sizeof(l), tl;
	struct tcp_info         ti;
	int                     port;

	if (getsockname(fd, (struct sockaddr *)&l, &ll) != 0)
		return;
	if (l.ss_family == AF_INET)
		port = ntohs(((struct sockaddr_in *)&l)->sin_port);
	else if (l.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&l)->sin6_port);
	else
		return;
	memset(&ti, 0, sizeof(ti));
	tl = sizeof(ti);
	for (size_t i = 0; i < nports; i++)
		if (ports[i] == port) {
			ls[i].listening = 1;
			/* for a listening socket, unacked is the accept queue's length */
			if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0)
				ls[i].queued += ti.tcpi_unacked;
		}
}

int
fb_conns_sweep(const int *ports, size_t nports, unsigned handshake_ms, unsigned max_handshakes,
               unsigned quiet_ms, fb_conns_dropped *d, fb_conns_listener *ls)
{
	DIR           *dir = opendir("/proc/self/fd");
	struct dirent *e;
	pending       *pend  = NULL;
	size_t         npend = 0, cappend = 0;
	uint64_t       now = fb_clock_mono_ms();

	memset(d, 0, sizeof(*d));
	memset(ls, 0, nports * sizeof(*ls));
	if (dir == NULL)
		return -1;
	sweeps++;
	while ((e = readdir(dir)) != NULL) {
		struct tcp_info ti;
		socklen_t       tl = sizeof(ti), ol = sizeof(int);
		int             fd = atoi(e->d_name), listening = 1;
		conn_key        k;

		if (e->d_name[0] == '.' || fd < 0 || fd == dirfd(dir) ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) != 0)
			continue;
		if (listening) {
			note_listener(fd, ports, nports, ls);
			continue;
		}
		if (key_from_fd(fd, &k) != 0 || !port_listed(ports, nports, k.lport))
			continue;
		memset(&ti, 0, sizeof(ti));
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0 ||
		    ti.tcpi_state != 1 /* TCP_ESTABLISHED */)
			continue;
		for (size_t i = 0; i < nports; i++)
			if (ports[i] == (int)k.lport) {
				if (is_admitted(&k))
					ls[i].admitted++;
				else
					ls[i].pending++;
			}
		if (is_admitted(&k)) {
			d->admitted++;
			continue;
		}
		if ((size_t)fd >= nseens) {
			size_t n = (size_t)fd + 64;
			seen  *s = realloc(seens, n * sizeof(*s));

			if (s == NULL)
				continue;
			memset(s + nseens, 0, (n - nseens) * sizeof(*s));
			seens  = s;
			nseens = n;
		}
		if (seens[fd].sweep == 0 || seens[fd].sweep + 1 != sweeps ||
		    !key_eq(&seens[fd].key, &k)) {
			seens[fd].key      = k;
			seens[fd].first_ms = now;
		}
		seens[fd].sweep = sweeps;
		if (now - seens[fd].first_ms >= handshake_ms) {
			if (shutdown(fd, SHUT_RDWR) == 0)
				d->slow++;
			continue;
		}
		if (npend == cappend) {
			size_t   cap = cappend ? cappend * 2 : 64;
			pending *p   = realloc(pend, cap * sizeof(*p));

			if (p == NULL)
				continue;
			pend    = p;
			cappend = cap;
		}
		pend[npend++] = (pending){fd, k.lport, ti.tcpi_last_data_recv};
	}
	closedir(dir);

	/* Per port, the quietest beyond max_handshakes go, if quiet for
	 * quiet_ms: a real client's handshake waits at most a round trip for
	 * its next flight, a stalled one waits for ever. A burst of new ones is
	 * not told apart from a real client's: the listener's connection limit
	 * holds them until they are quiet enough to go. */
	if (npend > 1)
		qsort(pend, npend, sizeof(*pend), by_quiet);
	for (size_t p = 0; p < nports; p++) {
		size_t on_port = 0, excess;

		for (size_t i = 0; i < npend; i++)
			on_port += pend[i].port == (uint16_t)ports[p] && pend[i].fd >= 0;
		excess = on_port > max_handshakes ? on_port - max_handshakes : 0;
		for (size_t i = 0; i < npend && excess > 0; i++) {
			if (pend[i].port != (uint16_t)ports[p] || pend[i].fd < 0 ||
			    pend[i].quiet_ms < quiet_ms)
				continue;
			if (shutdown(pend[i].fd, SHUT_RDWR) == 0)
				d->crowded++;
			pend[i].fd = -1;
			excess--;
		}
	}
	for (size_t i = 0; i < npend; i++)
		d->pending += pend[i].fd >= 0;
	free(pend);
	return 0;
}
