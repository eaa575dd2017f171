/*
 * rtsp_connector.c - the RTSP video connector (twin/rtsp.h) against real
 * test cameras: tests/support/rtsp_camera (GStreamer's RTSP server on
 * loopback, H.264), started by this program as child processes on ports
 * they pick and killed at the end (TW_RTSP_CAMERA names the binary).
 *
 * Covered: frames of the right size and pixel format (rgb24, gray,
 * yuv420p, scaled) over TCP and UDP; wall-clock stamps from the camera's
 * RTCP sender reports near the host's CLOCK_REALTIME and increasing; RATE
 * and KEYFRAMES extraction in stream time; reconnection to a camera
 * restarted on the same port (generation and seq continue); a dead port,
 * a server that never answers, a camera that stalls or vanishes for good;
 * tw_rtsp_interrupt from another thread; bad options; a recorded file
 * read to its end. alarm() bounds the
 * whole run; every wait on a camera has a deadline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "tw_test.h"
#include "twin/rtsp.h"

#define MAX_CAMERAS 8
#define SEC 1000000000LL

typedef struct camera {
  pid_t pid;
  int port;
} camera;

static pid_t live[MAX_CAMERAS];

static void kill_all(void) {
  for (int i = 0; i < MAX_CAMERAS; i++)
    if (live[i] > 0) {
      kill(live[i], SIGCONT);
      kill(live[i], SIGKILL);
      waitpid(live[i], NULL, 0);
      live[i] = 0;
    }
}

/* Starts a camera on port (0: any free one) and waits for "ready PORT". */
static camera camera_start(int port, int fps, int keyint) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  char sport[16], sfps[16], skey[16];
  snprintf(sport, sizeof sport, "%d", port);
  snprintf(sfps, sizeof sfps, "%d", fps);
  snprintf(skey, sizeof skey, "%d", keyint);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    /* A fixture, not under test: its libraries' leaks are not ours. */
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    execl(TW_RTSP_CAMERA, TW_RTSP_CAMERA, "--port", sport, "--fps", sfps,
          "--keyint", skey, "--width", "320", "--height", "240", "--duration-s",
          "120", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  for (int i = 0; i < MAX_CAMERAS; i++)
    if (live[i] == 0) {
      live[i] = pid;
      break;
    }
  char line[64];
  size_t n = 0;
  struct pollfd p = {.fd = fds[0], .events = POLLIN};
  while (n < sizeof line - 1 && (n == 0 || line[n - 1] != '\n')) {
    if (poll(&p, 1, 15000) <= 0)
      fail_msg("rtsp_camera did not say ready within 15 s");
    ssize_t k = read(fds[0], line + n, sizeof line - 1 - n);
    if (k <= 0)
      fail_msg("rtsp_camera exited before listening");
    n += (size_t)k;
  }
  line[n] = '\0';
  close(fds[0]);
  camera c = {pid, 0};
  if (sscanf(line, "ready %d", &c.port) != 1)
    fail_msg("rtsp_camera said '%s'", line);
  return c;
}

static void camera_signal(camera *c, int sig) {
  assert_int_equal(kill(c->pid, sig), 0);
  if (sig == SIGKILL || sig == SIGTERM) {
    waitpid(c->pid, NULL, 0);
    for (int i = 0; i < MAX_CAMERAS; i++)
      if (live[i] == c->pid)
        live[i] = 0;
    c->pid = 0;
  }
}

static void url_of(char *buf, size_t cap, int port) {
  snprintf(buf, cap, "rtsp://127.0.0.1:%d/test", port);
}

static int64_t wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static tw_rtsp *open_ok(tw_rtsp_opts *o) {
  tw_err err;
  tw_err_init(&err);
  tw_rtsp *r = NULL;
  int rc = tw_rtsp_open(o, &r, &err);
  if (rc != TW_OK)
    fail_msg("open %s: %s", o->url, tw_err_msg(&err));
  return r;
}

static void read_ok(tw_rtsp *r, tw_rtsp_frame *f) {
  tw_err err;
  tw_err_init(&err);
  int rc = tw_rtsp_read(r, f, &err);
  if (rc != TW_OK)
    fail_msg("read: %s (%s)", tw_err_msg(&err), tw_err_name(rc));
}

/* One camera serves the tests that do not disturb it. */
static camera shared;

static int setup_shared(void **state) {
  (void)state;
  shared = camera_start(0, 25, 10);
  return 0;
}

/* Reads frames of a given format and size; checks the wall-clock stamps. */
static void check_stream(bool tcp, const char *pix_fmt, int w, int h,
                         size_t size) {
  char url[64];
  url_of(url, sizeof url, shared.port);
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = url;
  o.tcp = tcp;
  o.pix_fmt = pix_fmt;
  if (w != 320) {
    o.width = w;
    o.height = h;
  }
  tw_rtsp *r = open_ok(&o);
  tw_rtsp_frame f;
  int64_t last_pts = INT64_MIN, last_wall = INT64_MIN;
  int stamped = 0;
  bool varies = false;
  /* 150 frames = 6 s at 25 fps, past the first sender report. */
  for (uint64_t i = 0; i < 150 && stamped < 25; i++) {
    read_ok(r, &f);
    assert_int_equal(f.seq, i);
    assert_int_equal(f.generation, 0);
    assert_int_equal(f.width, w);
    assert_int_equal(f.height, h);
    assert_string_equal(f.pix_fmt, pix_fmt);
    assert_int_equal(f.size, size);
    assert_true(f.pts_ns > last_pts);
    last_pts = f.pts_ns;
    for (size_t k = 1; k < f.size && !varies; k += 97)
      varies = f.data[k] != f.data[0];
    if (f.wall_ns != INT64_MIN) {
      int64_t d = wall_now() - f.wall_ns;
      if (d < -SEC || d > SEC)
        fail_msg("frame %" PRIu64 ": wall_ns is %.3f s from the host clock",
                 f.seq, (double)d / 1e9);
      if (getenv("TW_RTSP_TRACE"))
        fprintf(stderr, "frame %" PRIu64 " lag %.1f ms\n", f.seq,
                (double)d / 1e6);
      assert_true(f.wall_ns > last_wall);
      last_wall = f.wall_ns;
      stamped++;
    } else {
      assert_int_equal(last_wall, INT64_MIN); /* stamped stays stamped */
    }
  }
  assert_int_equal(stamped, 25);
  assert_true(varies);
  tw_rtsp_stats s;
  tw_rtsp_stats_get(r, &s);
  assert_true(s.packets >= s.decoded);
  assert_int_equal(s.extracted, f.seq + 1);
  assert_true(s.bytes > 0);
  assert_int_equal(s.reconnects, 0);
  tw_rtsp_close(r);
}

static void test_rgb24_tcp(void **state) {
  (void)state;
  check_stream(true, "rgb24", 320, 240, 320 * 240 * 3);
}

static void test_rgb24_udp(void **state) {
  (void)state;
  check_stream(false, "rgb24", 320, 240, 320 * 240 * 3);
}

static void test_gray_scaled(void **state) {
  (void)state;
  check_stream(true, "gray", 160, 120, 160 * 120);
}

static void test_yuv420p(void **state) {
  (void)state;
  check_stream(true, "yuv420p", 320, 240, 320 * 240 * 3 / 2);
}

/* RATE: 25 fps at 5 Hz keeps every fifth frame: 200 ms of stream time
 * apart, five in every second. */
static void test_rate(void **state) {
  (void)state;
  char url[64];
  url_of(url, sizeof url, shared.port);
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = url;
  o.extract = TW_RTSP_RATE;
  o.rate_hz = 5;
  tw_rtsp *r = open_ok(&o);
  tw_rtsp_frame f;
  read_ok(r, &f);
  int64_t t0 = f.pts_ns, prev = f.pts_ns;
  int in_3s = 1;
  for (int i = 0; i < 20; i++) {
    read_ok(r, &f);
    int64_t gap = f.pts_ns - prev;
    if (gap < 199000000 || gap > 201000000)
      fail_msg("frames %.1f ms apart in stream time, not 200",
               (double)gap / 1e6);
    prev = f.pts_ns;
    if (f.pts_ns - t0 < 3 * SEC)
      in_3s++;
  }
  assert_int_equal(in_3s, 15);
  tw_rtsp_stats s;
  tw_rtsp_stats_get(r, &s);
  assert_int_equal(s.extracted, 21);
  assert_true(s.skipped >= 4 * 20);
  tw_rtsp_close(r);
}

/* KEYFRAMES: a keyframe every 10 frames at 25 fps is 400 ms apart; the
 * other frames are not decoded at all. */
static void test_keyframes(void **state) {
  (void)state;
  char url[64];
  url_of(url, sizeof url, shared.port);
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = url;
  o.extract = TW_RTSP_KEYFRAMES;
  tw_rtsp *r = open_ok(&o);
  tw_rtsp_frame f;
  int64_t prev = INT64_MIN;
  for (int i = 0; i < 8; i++) {
    read_ok(r, &f);
    assert_true(f.keyframe);
    if (prev != INT64_MIN) {
      int64_t gap = f.pts_ns - prev;
      if (gap < 399000000 || gap > 401000000)
        fail_msg("keyframes %" PRId64 " and %" PRId64 " ns: %.1f ms apart, "
                 "not 400",
                 prev, f.pts_ns, (double)gap / 1e6);
    }
    prev = f.pts_ns;
  }
  tw_rtsp_stats s;
  tw_rtsp_stats_get(r, &s);
  /* At most the connection's first picture, without a timestamp, is
   * decoded and not delivered. */
  assert_true(s.decoded - s.extracted <= 1);
  assert_true(s.packets > 5 * s.decoded);
  tw_rtsp_close(r);
}

static void expect_open_error(tw_rtsp_opts *o, int code, const char *needle) {
  tw_err err;
  tw_err_init(&err);
  tw_rtsp *r = (tw_rtsp *)&err; /* must stay untouched */
  int rc = tw_rtsp_open(o, &r, &err);
  if (rc != code)
    fail_msg("open %s: %s (%s), expected %s", o->url ? o->url : "(null)",
             tw_err_msg(&err), tw_err_name(rc), tw_err_name(code));
  assert_ptr_equal(r, (tw_rtsp *)&err);
  if (strstr(err.msg, needle) == NULL)
    fail_msg("message '%s' does not name '%s'", err.msg, needle);
}

static void test_bad_options(void **state) {
  (void)state;
  char url[64], missing[64];
  url_of(url, sizeof url, shared.port);
  snprintf(missing, sizeof missing, "rtsp://127.0.0.1:%d/nothing", shared.port);
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = "";
  expect_open_error(&o, TW_EINVAL, "url");
  o.url = "nosuchscheme://127.0.0.1/test";
  expect_open_error(&o, TW_EINVAL, "nosuchscheme://");
  o.url = url;
  o.pix_fmt = "rgb25";
  expect_open_error(&o, TW_EINVAL, "'rgb25'");
  o.pix_fmt = NULL;
  o.extract = TW_RTSP_RATE;
  o.rate_hz = 0;
  expect_open_error(&o, TW_EINVAL, "rate_hz");
  o.extract = TW_RTSP_ALL;
  o.width = 100;
  expect_open_error(&o, TW_EINVAL, "width");
  o.width = 0;
  o.url = missing;
  expect_open_error(&o, TW_ENOENT, missing);
}

/* A file the camera records: every frame, then TW_RTSP_END; no sender
 * reports, so no wall time. */
static void test_file(void **state) {
  (void)state;
  char dir[] = "/tmp/rtsp_connector.XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/clip.mkv", dir);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    execl(TW_RTSP_CAMERA, TW_RTSP_CAMERA, "--out", path, "--frames", "30",
          "--width", "160", "--height", "120", "--keyint", "10", (char *)NULL);
    _exit(127);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = path;
  o.pix_fmt = "bgr24";
  tw_rtsp *r = open_ok(&o);
  tw_rtsp_frame f;
  tw_err err;
  tw_err_init(&err);
  int rc, n = 0, keys = 0;
  while ((rc = tw_rtsp_read(r, &f, &err)) == TW_OK) {
    assert_int_equal(f.seq, (uint64_t)n);
    assert_int_equal(f.size, 160 * 120 * 3);
    assert_int_equal(f.stride, 160 * 3);
    assert_int_equal(f.wall_ns, INT64_MIN);
    keys += f.keyframe;
    n++;
  }
  assert_int_equal(rc, TW_RTSP_END);
  assert_int_equal(n, 30);
  assert_int_equal(keys, 3);
  assert_int_equal(tw_rtsp_read(r, &f, &err), TW_RTSP_END);
  tw_rtsp_close(r);
  unlink(path);
  rmdir(dir);
}

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
  close(s);
  return ntohs(a.sin_port);
}

static void test_dead_port(void **state) {
  (void)state;
  char url[64];
  url_of(url, sizeof url, free_port());
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = url;
  o.timeout_ms = 2000;
  expect_open_error(&o, TW_ECONN, url);
}

/* A server that accepts connections (the kernel does, from the backlog)
 * and never says a word. */
static void test_never_answers(void **state) {
  (void)state;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s, 4), 0);
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
  char url[64];
  url_of(url, sizeof url, ntohs(a.sin_port));
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = url;
  o.timeout_ms = 1000;
  expect_open_error(&o, TW_ETIMEDOUT, "no answer within 1000 ms");
  close(s);
}

/* The camera dies; another starts on the same port: the connector comes
 * back with generation 1 and seq going on. */
static void test_reconnect(void **state) {
  (void)state;
  camera c = camera_start(0, 25, 10);
  char url[64];
  url_of(url, sizeof url, c.port);
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = url;
  o.timeout_ms = 3000;
  o.reconnect_min_ms = 100;
  o.reconnect_max_ms = 800;
  tw_rtsp *r = open_ok(&o);
  tw_rtsp_frame f;
  for (int i = 0; i < 10; i++)
    read_ok(r, &f);
  uint64_t before = f.seq;
  camera_signal(&c, SIGKILL);
  /* Frames still buffered may come first, still of generation 0. */
  camera c2 = camera_start(c.port, 25, 10);
  do {
    read_ok(r, &f);
    assert_int_equal(f.seq, ++before);
  } while (f.generation == 0);
  assert_int_equal(f.generation, 1);
  assert_int_equal(f.width, 320);
  for (int i = 0; i < 5; i++) {
    read_ok(r, &f);
    assert_int_equal(f.seq, ++before);
    assert_int_equal(f.generation, 1);
  }
  tw_rtsp_stats s;
  tw_rtsp_stats_get(r, &s);
  assert_int_equal(s.reconnects, 1);
  tw_rtsp_close(r);
  camera_signal(&c2, SIGKILL);
}

/* The camera vanishes for good: the attempts run out into TW_ECONN. */
static void test_gone(void **state) {
  (void)state;
  camera c = camera_start(0, 25, 10);
  char url[64];
  url_of(url, sizeof url, c.port);
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = url;
  o.timeout_ms = 2000;
  o.reconnect_min_ms = 50;
  o.max_reconnects = 2;
  tw_rtsp *r = open_ok(&o);
  tw_rtsp_frame f;
  read_ok(r, &f);
  camera_signal(&c, SIGKILL);
  tw_err err;
  tw_err_init(&err);
  int rc;
  while ((rc = tw_rtsp_read(r, &f, &err)) == TW_OK)
    assert_int_equal(f.generation, 0);
  if (rc != TW_ECONN || strstr(err.msg, "2 reconnection attempts") == NULL)
    fail_msg("%s (%s)", tw_err_msg(&err), tw_err_name(rc));
  tw_rtsp_stats s;
  tw_rtsp_stats_get(r, &s);
  assert_int_equal(s.reconnect_failures, 2);
  tw_rtsp_close(r);
}

/* The camera stops sending (SIGSTOP): the read gives up after timeout_ms
 * with TW_ETIMEDOUT when no reconnection is allowed. */
static void test_stall(void **state) {
  (void)state;
  camera c = camera_start(0, 25, 10);
  char url[64];
  url_of(url, sizeof url, c.port);
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = url;
  o.timeout_ms = 1500;
  o.max_reconnects = 0;
  tw_rtsp *r = open_ok(&o);
  tw_rtsp_frame f;
  read_ok(r, &f);
  camera_signal(&c, SIGSTOP);
  tw_err err;
  tw_err_init(&err);
  int rc;
  while ((rc = tw_rtsp_read(r, &f, &err)) == TW_OK) {
  }
  if (rc != TW_ETIMEDOUT || strstr(err.msg, "1500 ms") == NULL)
    fail_msg("%s (%s)", tw_err_msg(&err), tw_err_name(rc));
  tw_rtsp_close(r);
  camera_signal(&c, SIGCONT);
  camera_signal(&c, SIGKILL);
}

static void *interrupter(void *arg) {
  struct timespec ts = {0, 300000000};
  nanosleep(&ts, NULL);
  tw_rtsp_interrupt(arg);
  return NULL;
}

/* A read blocked on a stalled camera, with a timeout far away, returns
 * TW_ECANCELED once another thread calls tw_rtsp_interrupt. */
static void test_interrupt(void **state) {
  (void)state;
  camera c = camera_start(0, 25, 10);
  char url[64];
  url_of(url, sizeof url, c.port);
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = url;
  o.timeout_ms = 60000;
  tw_rtsp *r = open_ok(&o);
  tw_rtsp_frame f;
  read_ok(r, &f);
  camera_signal(&c, SIGSTOP);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, interrupter, r), 0);
  tw_err err;
  tw_err_init(&err);
  int rc;
  while ((rc = tw_rtsp_read(r, &f, &err)) == TW_OK) {
  }
  pthread_join(t, NULL);
  if (rc != TW_ECANCELED)
    fail_msg("%s (%s)", tw_err_msg(&err), tw_err_name(rc));
  /* Sticky: the next read does not block either. */
  assert_int_equal(tw_rtsp_read(r, &f, NULL), TW_ECANCELED);
  tw_rtsp_close(r);
  camera_signal(&c, SIGCONT);
  camera_signal(&c, SIGKILL);
}

int main(void) {
  alarm(150);
  atexit(kill_all);
  av_log_set_level(AV_LOG_FATAL);
  const struct CMUnitTest tests[] = {
      TW_TEST(test_rgb24_tcp),     TW_TEST(test_rgb24_udp),
      TW_TEST(test_gray_scaled),   TW_TEST(test_yuv420p),
      TW_TEST(test_rate),          TW_TEST(test_keyframes),
      TW_TEST(test_bad_options),   TW_TEST(test_dead_port),
      TW_TEST(test_never_answers), TW_TEST(test_reconnect),
      TW_TEST(test_gone),          TW_TEST(test_stall),
      TW_TEST(test_interrupt),     TW_TEST(test_file),
  };
  int failed = cmocka_run_group_tests_name("integration.rtsp", tests,
                                           setup_shared, NULL);
  kill_all();
  return failed;
}
