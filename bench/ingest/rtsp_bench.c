/*
 * rtsp_bench.c - decode-and-extract throughput of the RTSP video connector
 * (twin/rtsp.h) against the plain libav loop a user would write, on the
 * same H.264 stream. One JSON line per measurement (BENCHMARKS.md).
 *
 * The stream is recorded once by the test camera (tests/support/
 * rtsp_camera --out, the same videotestsrc -> x264enc stream it serves
 * over RTSP) into a Matroska file, and both sides read that file: a live
 * camera paces frames at its frame rate, so over RTSP both would measure
 * the camera; the file removes pacing and network variance and leaves
 * what the connector adds per frame (its loop, extraction, conversion
 * into its buffer). Both convert every frame to rgb24 with swscale
 * (SWS_BILINEAR, same size) and use the same decoder thread count; the
 * runs alternate, medians of --reps after one warm-up each.
 *
 *   rtsp_bench --camera PATH [--reps 5] [--frames 500] [--width 1280]
 *              [--height 720] [--threads 1,0]
 *
 * Lines: {"bench":"rtsp_decode","impl":"libav"|"twin","threads":T,
 * "width":W,"height":H,"frames":N,"fps":F, and for twin only "ratio":
 * twin/libav, "target":0.95, "met":ratio >= target}.
 *
 * Build (after building the library, e.g. in build/NAME):
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude bench/ingest/rtsp_bench.c \
 *     -o build/NAME/rtsp_bench -Lbuild/NAME -ltwin -Wl,-rpath,$PWD/build/NAME \
 *     $(pkg-config --cflags --libs libavformat libavcodec libavutil \
 *       libswscale)
 *   build/NAME/rtsp_bench --camera build/NAME/tests/integration/rtsp_camera
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include "twin/rtsp.h"

#define MAX_REPS 31

static volatile unsigned sink; /* keeps the pictures' reads alive */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "rtsp_bench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The plain loop: open, decode, convert every frame to rgb24. Returns the
 * frames converted; *sum gets a byte of each so nothing is optimised
 * away. */
static long plain(const char *path, int threads, unsigned *sum) {
  AVFormatContext *fmt = NULL;
  if (avformat_open_input(&fmt, path, NULL, NULL) < 0 ||
      avformat_find_stream_info(fmt, NULL) < 0)
    die("libav: cannot open %s", path);
  int vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
  if (vs < 0)
    die("libav: no video in %s", path);
  const AVCodec *codec =
      avcodec_find_decoder(fmt->streams[vs]->codecpar->codec_id);
  AVCodecContext *dec = avcodec_alloc_context3(codec);
  avcodec_parameters_to_context(dec, fmt->streams[vs]->codecpar);
  dec->thread_count = threads;
  if (avcodec_open2(dec, codec, NULL) < 0)
    die("libav: cannot open the decoder for %s", path);
  AVPacket *pkt = av_packet_alloc();
  AVFrame *frame = av_frame_alloc();
  struct SwsContext *sws = NULL;
  uint8_t *rgb[4] = {NULL};
  int ls[4];
  long n = 0;
  bool eof = false;
  while (true) {
    int ret = avcodec_receive_frame(dec, frame);
    if (ret == 0) {
      if (rgb[0] == NULL)
        av_image_alloc(rgb, ls, frame->width, frame->height, AV_PIX_FMT_RGB24,
                       1);
      sws = sws_getCachedContext(sws, frame->width, frame->height,
                                 (enum AVPixelFormat)frame->format,
                                 frame->width, frame->height, AV_PIX_FMT_RGB24,
                                 SWS_BILINEAR, NULL, NULL, NULL);
      sws_scale(sws, (const uint8_t *const *)frame->data, frame->linesize, 0,
                frame->height, rgb, ls);
      *sum += rgb[0][n % (size_t)ls[0]];
      n++;
      av_frame_unref(frame);
      continue;
    }
    if (ret == AVERROR_EOF)
      break;
    if (eof)
      break;
    if (av_read_frame(fmt, pkt) < 0) {
      eof = true;
      avcodec_send_packet(dec, NULL);
      continue;
    }
    if (pkt->stream_index == vs)
      avcodec_send_packet(dec, pkt);
    av_packet_unref(pkt);
  }
  av_freep(&rgb[0]);
  sws_freeContext(sws);
  av_frame_free(&frame);
  av_packet_free(&pkt);
  avcodec_free_context(&dec);
  avformat_close_input(&fmt);
  return n;
}

/* The same through tw_rtsp (TW_RTSP_ALL, rgb24). */
static long twin(const char *path, int threads, unsigned *sum) {
  tw_rtsp_opts o;
  tw_rtsp_opts_init(&o);
  o.url = path;
  o.threads = threads;
  tw_rtsp *r = NULL;
  tw_err err;
  tw_err_init(&err);
  if (tw_rtsp_open(&o, &r, &err) != TW_OK)
    die("twin: %s", tw_err_msg(&err));
  tw_rtsp_frame f;
  long n = 0;
  int rc;
  while ((rc = tw_rtsp_read(r, &f, &err)) == TW_OK) {
    *sum += f.data[(size_t)n % (size_t)f.stride];
    n++;
  }
  if (rc != TW_RTSP_END)
    die("twin: %s", tw_err_msg(&err));
  tw_rtsp_close(r);
  return n;
}

static void record(const char *camera, const char *path, int frames, int w,
                   int h) {
  char sf[16], sw[16], sh[16];
  snprintf(sf, sizeof sf, "%d", frames);
  snprintf(sw, sizeof sw, "%d", w);
  snprintf(sh, sizeof sh, "%d", h);
  pid_t pid = fork();
  if (pid == 0) {
    execl(camera, camera, "--out", path, "--frames", sf, "--width", sw,
          "--height", sh, "--fps", "25", "--keyint", "50", (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    die("%s --out failed", camera);
}

int main(int argc, char **argv) {
  const char *camera = NULL, *threads_list = "1,0";
  int reps = 5, frames = 500, w = 1280, h = 720;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--camera") == 0)
      camera = argv[i + 1];
    else if (strcmp(argv[i], "--reps") == 0)
      reps = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--frames") == 0)
      frames = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--width") == 0)
      w = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--height") == 0)
      h = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--threads") == 0)
      threads_list = argv[i + 1];
    else
      die("unknown option %s", argv[i]);
  }
  if (camera == NULL || reps < 1 || reps > MAX_REPS || frames < 1)
    die("%s", "usage: rtsp_bench --camera PATH [--reps 1..31] [--frames N] "
              "[--width W] [--height H] [--threads 1,0]");
  av_log_set_level(AV_LOG_ERROR);
  char dir[] = "/tmp/rtsp_bench.XXXXXX";
  if (mkdtemp(dir) == NULL)
    die("%s", "mkdtemp failed");
  char path[sizeof dir + 16];
  snprintf(path, sizeof path, "%s/stream.mkv", dir);
  record(camera, path, frames, w, h);

  char list[64];
  snprintf(list, sizeof list, "%s", threads_list);
  for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL;
       t = strtok_r(NULL, ",", &save)) {
    int threads = atoi(t);
    double tp[MAX_REPS], tt[MAX_REPS];
    unsigned sum = 0;
    long n_plain = plain(path, threads, &sum); /* warm-up */
    long n_twin = twin(path, threads, &sum);
    if (n_plain != n_twin || n_plain != frames) {
      fprintf(stderr, "rtsp_bench: frames: libav %ld, twin %ld, recorded %d\n",
              n_plain, n_twin, frames);
      return 1;
    }
    for (int i = 0; i < reps; i++) {
      double t0 = now_s();
      plain(path, threads, &sum);
      double t1 = now_s();
      twin(path, threads, &sum);
      double t2 = now_s();
      tp[i] = (double)frames / (t1 - t0);
      tt[i] = (double)frames / (t2 - t1);
    }
    qsort(tp, (size_t)reps, sizeof *tp, cmp_d);
    qsort(tt, (size_t)reps, sizeof *tt, cmp_d);
    double fp = tp[reps / 2], ft = tt[reps / 2];
    printf("{\"bench\":\"rtsp_decode\",\"impl\":\"libav\",\"threads\":%d,"
           "\"width\":%d,\"height\":%d,\"frames\":%d,\"fps\":%.1f}\n",
           threads, w, h, frames, fp);
    printf("{\"bench\":\"rtsp_decode\",\"impl\":\"twin\",\"threads\":%d,"
           "\"width\":%d,\"height\":%d,\"frames\":%d,\"fps\":%.1f,"
           "\"ratio\":%.3f,\"target\":0.95,\"met\":%s}\n",
           threads, w, h, frames, ft, ft / fp,
           ft / fp >= 0.95 ? "true" : "false");
    sink = sum;
    fflush(stdout);
  }
  unlink(path);
  rmdir(dir);
  return 0;
}
