/*
 * progress.c - a worker's counters and phase, and its reports to the agent
 * (length-prefixed JobReport messages on the report pipe; supervise.c
 * reads them). A report that cannot be written is dropped: the agent's
 * watchdog notices a worker that has gone quiet.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "failback/clock.h"
#include "worker.h"

#define EMIT_MS 100

static void
progress_send(progress *p, Failback__JobReport *rep)
{
	uint8_t buf[FB_REPORT_MAX + 4];
	size_t  len;

	rep->phase        = p->phase[0] ? p->phase : "Starting";
	rep->bytes_done   = p->bytes_done < p->bytes_total ? p->bytes_done : p->bytes_total;
	rep->bytes_total  = p->bytes_total;
	rep->blocks_done  = p->blocks_done < p->blocks_total ? p->blocks_done : p->blocks_total;
	rep->blocks_total = p->blocks_total;
	rep->bytes_on_wire = progress_wire(p);
	rep->bytes_read    = p->read;
	rep->compare_mode  = p->mode;
	rep->vm_id        = p->vm_id;
	if ((len = failback__job_report__get_packed_size(rep)) > FB_REPORT_MAX)
		return;
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	failback__job_report__pack(rep, buf + 4);
	(void)!write(p->fd, buf, len + 4);
}

void
progress_emit(progress *p, int force)
{
	Failback__JobReport rep = FAILBACK__JOB_REPORT__INIT;
	uint64_t            now = fb_clock_mono_ms();

	if (!force && now - p->last_emit < EMIT_MS)
		return;
	p->last_emit = now;
	progress_send(p, &rep);
}

void
progress_phase(progress *p, const char *phase)
{
	snprintf(p->phase, sizeof(p->phase), "%s", phase);
	progress_emit(p, 1);
}

void
progress_sleep_ms(progress *p, unsigned ms)
{
	for (unsigned t = 0; t < ms; t += 50) {
		usleep(50000);
		progress_emit(p, 0);
	}
}

void
progress_add_wire(progress *p, uint64_t bytes)
{
	__atomic_add_fetch(&p->wire, bytes, __ATOMIC_RELAXED);
}

uint64_t
progress_wire(progress *p)
{
	return __atomic_load_n(&p->wire, __ATOMIC_RELAXED);
}

void
progress_end(progress *p, uint32_t rv, const char *desc)
{
	Failback__JobReport rep = FAILBACK__JOB_REPORT__INIT;
	char                msg[FB_ERR_MSG_MAX];

	if (rv == FB_RV_OK) {
		rep.kind = FAILBACK__JOB_REPORT__KIND__DONE;
	} else {
		snprintf(msg, sizeof(msg), "%s", desc != NULL && desc[0] ? desc : "failed");
		for (char *c = msg; *c; c++)
			if (*c == '\n' || *c == '\r')
				*c = ' ';
		rep.kind              = FAILBACK__JOB_REPORT__KIND__FAILED;
		rep.error_code        = rv;
		rep.error_description = msg;
	}
	progress_send(p, &rep);
}
