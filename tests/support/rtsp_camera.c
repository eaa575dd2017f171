/*
 * rtsp_camera.c - a test camera: an RTSP server on loopback
 * (libgstrtspserver-1.0) serving a generated H.264 stream at
 * rtsp://127.0.0.1:PORT/test, for the RTSP connector's tests and
 * benchmark.
 *
 *   rtsp_camera [--port N] [--width W] [--height H] [--fps F]
 *               [--keyint K] [--duration-s S]
 *   rtsp_camera --out FILE --frames N [--width W] [--height H] [--fps F]
 *               [--keyint K]
 *
 * Serving: videotestsrc (live, a moving ball over a test pattern) ->
 * x264enc (ultrafast, zero latency, an IDR frame every K frames) ->
 * rtph264pay. Every client gets its own pipeline (not shared), so its
 * stream starts on a keyframe. "ready PORT" is printed on stdout once the
 * server listens (--port 0 picks a free port); with --duration-s the
 * server stops after S seconds, else on SIGINT/SIGTERM.
 *
 * Wall-clock time: the RTCP sender reports carry the NTP time of the
 * system clock (rtpsession's default ntp-time-source, "ntp", reads the
 * real-time clock) against the RTP timestamp of the packets being sent
 * (its default rtcp-sync-send-time), so a receiver that maps RTP time to
 * NTP time gets the host's CLOCK_REALTIME at sending, give or take the
 * scheduling of the sender. The media's minimum RTCP interval is lowered
 * to 0.5 s so the first report comes soon after PLAY.
 *
 * --out writes N frames of the same encoded stream (not live, as fast as
 * it encodes) into a Matroska file, for decoding benchmarks free of
 * network and pacing.
 */
#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct camera_opts {
  int port, width, height, fps, keyint, duration_s, frames;
  const char *out;
} camera_opts;

static GMainLoop *loop;

static void usage(void) {
  fprintf(stderr,
          "usage: rtsp_camera [--port N] [--width W] [--height H] [--fps F] "
          "[--keyint K] [--duration-s S]\n"
          "       rtsp_camera --out FILE --frames N [--width W] [--height H] "
          "[--fps F] [--keyint K]\n");
  exit(2);
}

static int int_arg(const char *name, const char *v, int min, int max) {
  char *end = NULL;
  long x = v != NULL ? strtol(v, &end, 10) : 0;
  if (v == NULL || *v == '\0' || *end != '\0' || x < min || x > max) {
    fprintf(stderr, "rtsp_camera: %s: an integer from %d to %d is needed\n",
            name, min, max);
    exit(2);
  }
  return (int)x;
}

static void parse_args(int argc, char **argv, camera_opts *o) {
  *o = (camera_opts){
      .port = 8554, .width = 320, .height = 240, .fps = 25, .keyint = 25};
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--port") == 0)
      o->port = int_arg(a, v, 0, 65535);
    else if (strcmp(a, "--width") == 0)
      o->width = int_arg(a, v, 16, 7680);
    else if (strcmp(a, "--height") == 0)
      o->height = int_arg(a, v, 16, 4320);
    else if (strcmp(a, "--fps") == 0)
      o->fps = int_arg(a, v, 1, 240);
    else if (strcmp(a, "--keyint") == 0)
      o->keyint = int_arg(a, v, 1, 10000);
    else if (strcmp(a, "--duration-s") == 0)
      o->duration_s = int_arg(a, v, 1, 86400);
    else if (strcmp(a, "--frames") == 0)
      o->frames = int_arg(a, v, 1, 1000000);
    else if (strcmp(a, "--out") == 0 && v != NULL)
      o->out = v;
    else
      usage();
  }
  if (o->out != NULL && o->frames == 0)
    usage();
}

/* The source and encoder; frames < 0: live and endless. */
static char *pipeline_text(const camera_opts *o, int frames) {
  return g_strdup_printf(
      "videotestsrc is-live=%s num-buffers=%d pattern=smpte "
      "horizontal-speed=4 ! "
      "video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast sliced-threads=false "
      "key-int-max=%d "
      "bitrate=2000 ",
      frames < 0 ? "true" : "false", frames, o->width, o->height, o->fps,
      o->keyint);
}

/* Writes o->frames frames into o->out; 0 on success. */
static int record(const camera_opts *o) {
  char *head = pipeline_text(o, o->frames);
  char *text = g_strdup_printf(
      "%s ! h264parse ! matroskamux ! filesink location=\"%s\"", head, o->out);
  GError *gerr = NULL;
  GstElement *p = gst_parse_launch(text, &gerr);
  g_free(head);
  g_free(text);
  if (p == NULL) {
    fprintf(stderr, "rtsp_camera: pipeline: %s\n",
            gerr != NULL ? gerr->message : "?");
    g_clear_error(&gerr);
    return 1;
  }
  g_clear_error(&gerr);
  gst_element_set_state(p, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus(p);
  GstMessage *m = gst_bus_timed_pop_filtered(
      bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  int rc = 0;
  if (m != NULL && GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
    GError *e = NULL;
    gst_message_parse_error(m, &e, NULL);
    fprintf(stderr, "rtsp_camera: %s\n", e != NULL ? e->message : "error");
    g_clear_error(&e);
    rc = 1;
  }
  if (m != NULL)
    gst_message_unref(m);
  gst_object_unref(bus);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  return rc;
}

/* Lowers the minimum RTCP interval of every RTP session of a media so the
 * first sender report follows PLAY closely. */
static void on_media_prepared(GstRTSPMedia *media, gpointer ud) {
  (void)ud;
  GstElement *bin = gst_rtsp_media_get_element(media);
  GstObject *pipe = bin != NULL ? gst_object_get_parent(GST_OBJECT(bin)) : NULL;
  if (pipe != NULL && GST_IS_BIN(pipe)) {
    GstIterator *it = gst_bin_iterate_elements(GST_BIN(pipe));
    GValue v = G_VALUE_INIT;
    while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
      GstElement *e = g_value_get_object(&v);
      GstElementFactory *f = gst_element_get_factory(e);
      if (f != NULL &&
          strcmp(gst_plugin_feature_get_name(GST_PLUGIN_FEATURE(f)),
                 "rtpbin") == 0) {
        for (guint id = 0; id < gst_rtsp_media_n_streams(media); id++) {
          GObject *session = NULL;
          g_signal_emit_by_name(e, "get-internal-session", id, &session);
          if (session != NULL) {
            g_object_set(session, "rtcp-min-interval",
                         (guint64)500 * GST_MSECOND, NULL);
            g_object_unref(session);
          }
        }
      }
      g_value_reset(&v);
    }
    g_value_unset(&v);
    gst_iterator_free(it);
  }
  if (pipe != NULL)
    gst_object_unref(pipe);
  if (bin != NULL)
    gst_object_unref(bin);
}

static void on_media_configure(GstRTSPMediaFactory *f, GstRTSPMedia *media,
                               gpointer ud) {
  (void)f;
  g_signal_connect(media, "prepared", G_CALLBACK(on_media_prepared), ud);
}

static gboolean on_stop(gpointer ud) {
  (void)ud;
  g_main_loop_quit(loop);
  return G_SOURCE_REMOVE;
}

/* Drops sessions that timed out, so a client that vanished is forgotten. */
static gboolean on_cleanup(gpointer ud) {
  gst_rtsp_server_client_filter(GST_RTSP_SERVER(ud), NULL, NULL);
  GstRTSPSessionPool *pool = gst_rtsp_server_get_session_pool(ud);
  gst_rtsp_session_pool_cleanup(pool);
  g_object_unref(pool);
  return G_SOURCE_CONTINUE;
}

static int serve(const camera_opts *o) {
  GstRTSPServer *server = gst_rtsp_server_new();
  char service[16];
  snprintf(service, sizeof service, "%d", o->port);
  gst_rtsp_server_set_address(server, "127.0.0.1");
  gst_rtsp_server_set_service(server, service);

  GstRTSPMediaFactory *factory = gst_rtsp_media_factory_new();
  char *head = pipeline_text(o, -1);
  char *launch = g_strdup_printf("( %s ! rtph264pay name=pay0 pt=96 "
                                 "config-interval=-1 )",
                                 head);
  gst_rtsp_media_factory_set_launch(factory, launch);
  g_free(head);
  g_free(launch);
  gst_rtsp_media_factory_set_shared(factory, FALSE);
  g_signal_connect(factory, "media-configure", G_CALLBACK(on_media_configure),
                   NULL);
  GstRTSPMountPoints *mounts = gst_rtsp_server_get_mount_points(server);
  gst_rtsp_mount_points_add_factory(mounts, "/test", factory);
  g_object_unref(mounts);

  GError *gerr = NULL;
  GSource *src = gst_rtsp_server_create_source(server, NULL, &gerr);
  if (src == NULL) {
    fprintf(stderr, "rtsp_camera: listen on 127.0.0.1:%d: %s\n", o->port,
            gerr != NULL ? gerr->message : "?");
    g_clear_error(&gerr);
    g_object_unref(server);
    return 1;
  }
  g_source_attach(src, NULL);
  g_source_unref(src);
  printf("ready %d\n", gst_rtsp_server_get_bound_port(server));
  fflush(stdout);

  if (o->duration_s > 0)
    g_timeout_add_seconds((guint)o->duration_s, on_stop, NULL);
  g_timeout_add_seconds(2, on_cleanup, server);
  g_unix_signal_add(SIGINT, on_stop, NULL);
  g_unix_signal_add(SIGTERM, on_stop, NULL);
  g_main_loop_run(loop);
  g_object_unref(server);
  return 0;
}

int main(int argc, char **argv) {
  camera_opts o;
  parse_args(argc, argv, &o);
  gst_init(NULL, NULL);
  if (o.out != NULL)
    return record(&o);
  loop = g_main_loop_new(NULL, FALSE);
  int rc = serve(&o);
  g_main_loop_unref(loop);
  return rc;
}
