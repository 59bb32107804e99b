/*
 * events_test.c - the event wire format: topic, NUL, packed JobEvent; what
 * a subscriber decodes is what was published, and junk is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "failback/events.h"

static void
decoded_event_matches_topic_and_fields(void **state)
{
	Failback__JobEvent  ev = FAILBACK__JOB_EVENT__INIT;
	Failback__JobEvent *got;
	uint8_t             buf[512];
	char                topic[128];
	size_t              n;
	fb_err              err;

	(void)state;
	ev.job_id           = "5f1c0d2e-0000-4000-8000-000000000001";
	ev.job_state        = FAILBACK__JOB_STATE__JS_RUNNING;
	ev.phase            = "Transferring";
	ev.percent_complete = 42;
	memcpy(buf, "job/5f1c0d2e-0000-4000-8000-000000000001", 41);
	n = 41 + failback__job_event__pack(&ev, buf + 41);
	assert_int_equal(fb_events_decode(buf, n, topic, sizeof(topic), &got, &err), FB_RV_OK);
	assert_string_equal(topic, "job/5f1c0d2e-0000-4000-8000-000000000001");
	assert_string_equal(got->phase, "Transferring");
	assert_int_equal(got->percent_complete, 42);
	assert_int_equal(got->job_state, 4);
	failback__job_event__free_unpacked(got, NULL);
}

static void
message_without_topic_or_with_junk_is_refused(void **state)
{
	static const uint8_t notopic[] = {'j', 'o', 'b'};
	static const uint8_t junk[]    = {'j', 0, 0xff, 0xff, 0xff, 0xff, 0x0f};
	Failback__JobEvent  *got       = NULL;
	char                 topic[8];
	fb_err               err;

	(void)state;
	assert_int_equal(fb_events_decode(notopic, sizeof(notopic), topic, sizeof(topic), &got,
	                                  &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_events_decode(junk, sizeof(junk), topic, sizeof(topic), &got, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_null(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decoded_event_matches_topic_and_fields),
	    cmocka_unit_test(message_without_topic_or_with_junk_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
