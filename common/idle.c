/*
 * idle.c - dropping connections that never spoke (see agent.c). Uses the
 * kernel's struct tcp_info from <linux/tcp.h>, whose byte counters glibc's
 * copy lacks, so it lives apart from code that includes <netinet/tcp.h>.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>

#include "failback/idle.h"

static int
local_port(int fd, int *port)
{
	struct sockaddr_storage ss;
	socklen_t               len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		return -1;
	return 0;
}

int
fb_idle_sweep(const int *ports, size_t nports, unsigned silent_ms, unsigned *dropped)
{
	DIR           *d = opendir("/proc/self/fd");
	struct dirent *e;

	*dropped = 0;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		struct tcp_info ti;
		socklen_t       tl = sizeof(ti), ol = sizeof(int);
		int             fd = atoi(e->d_name), port, listening = 1, ours = 0;

		if (e->d_name[0] == '.' || fd == dirfd(d) || local_port(fd, &port) != 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) != 0 || listening)
			continue;
		for (size_t i = 0; i < nports && !ours; i++)
			ours = ports[i] == port;
		memset(&ti, 0, sizeof(ti));
		if (!ours || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0 ||
		    tl < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
			continue;
		if (ti.tcpi_state == 1 /* TCP_ESTABLISHED */ && ti.tcpi_bytes_received == 0 &&
		    ti.tcpi_last_data_recv >= silent_ms && shutdown(fd, SHUT_RDWR) == 0)
			(*dropped)++;
	}
	closedir(d);
	return 0;
}
