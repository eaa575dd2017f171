/*
 * rtsp.c - the RTSP video connector (twin/rtsp.h) on FFmpeg 5.1: one
 * libavformat input, one decoder, one converter, and the loop that turns
 * packets into extracted frames, reconnecting when the input fails.
 *
 * Invariants: r->fmt and r->dec are both open (connected) or both NULL
 * (lost, awaiting reconnection); every blocking libav call runs with
 * r->deadline armed, so the interrupt callback bounds it by timeout_ms and
 * ends it at once after tw_rtsp_interrupt; the frame handed out points
 * into r->buf, rewritten only by the next read. A lost input is drained
 * (the decoder's buffered frames still go out) before it is closed.
 */
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "twin/alloc.h"
#include "twin/clock.h"
#include "twin/rtsp.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_RECONNECT_MIN_MS 200
#define DEFAULT_RECONNECT_MAX_MS 5000

struct tw_rtsp {
  tw_rtsp_opts o; /* url and pix_fmt point at the copies below */
  char *url;
  const char *out_name;

  AVFormatContext *fmt; /* NULL while lost */
  AVCodecContext *dec;
  AVPacket *pkt;
  AVFrame *frame;
  struct SwsContext *sws;
  uint8_t *buf;
  size_t buf_cap;
  AVRational tb;

  int64_t deadline_ns;  /* monotonic; 0: none */
  int64_t wall_base_ns; /* start_time_realtime in ns, or INT64_MIN */
  int64_t next_due_ns;  /* RATE: the next frame's earliest stream time */
  int64_t period_ns;
  uint64_t seq;
  tw_rtsp_stats st;
  tw_err lost; /* why the input was lost, once draining */

  enum AVPixelFormat out_fmt;
  int vstream;
  int lost_code;  /* the code of lost */
  int attempts;   /* reconnection attempts since the last frame */
  int backoff_ms; /* the next wait before an attempt */
  uint32_t generation;
  atomic_bool interrupted;
  bool network;   /* reconnect at the end (else the end is TW_RTSP_END) */
  bool timed_out; /* the interrupt callback fired on the deadline */
  bool draining;  /* the input failed or ended: emptying the decoder */
  bool lost_eof;  /* the input ended (rather than failed) */
  bool ended;     /* a finite input was read to its end */
  bool have_due;  /* RATE: next_due_ns is set */
};

void tw_rtsp_opts_init(tw_rtsp_opts *o) {
  memset(o, 0, sizeof *o);
  o->tcp = true;
  o->extract = TW_RTSP_ALL;
  o->pix_fmt = "rgb24";
  o->timeout_ms = DEFAULT_TIMEOUT_MS;
  o->reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
  o->reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
  o->max_reconnects = -1;
}

/* --- Time and interruption ------------------------------------------------
 */

static int64_t mono_ns(void) { return (int64_t)tw_clock_mono_ns(); }

static void arm(tw_rtsp *r) {
  r->timed_out = false;
  r->deadline_ns = mono_ns() + (int64_t)r->o.timeout_ms * 1000000;
}

static int interrupt_cb(void *ud) {
  tw_rtsp *r = ud;
  if (atomic_load_explicit(&r->interrupted, memory_order_relaxed))
    return 1;
  if (r->deadline_ns != 0 && mono_ns() > r->deadline_ns) {
    r->timed_out = true;
    return 1;
  }
  return 0;
}

void tw_rtsp_interrupt(tw_rtsp *r) {
  if (r != NULL)
    atomic_store(&r->interrupted, true);
}

static bool interrupted(const tw_rtsp *r) {
  return atomic_load_explicit(&r->interrupted, memory_order_relaxed);
}

/* Sleeps ms unless interrupted; false if interrupted. */
static bool nap(tw_rtsp *r, int ms) {
  int64_t end = mono_ns() + (int64_t)ms * 1000000;
  while (!interrupted(r)) {
    int64_t left = end - mono_ns();
    if (left <= 0)
      return true;
    if (left > 20000000)
      left = 20000000;
    struct timespec ts = {0, (long)left};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* --- Errors -----------------------------------------------------------------
 */

/* The Twin code of a libav error met at a step of r. */
static int av_code(const tw_rtsp *r, int averr) {
  if (interrupted(r))
    return TW_ECANCELED;
  if (r->timed_out || averr == AVERROR(ETIMEDOUT))
    return TW_ETIMEDOUT;
  switch (averr) {
  case AVERROR(ENOMEM):
    return TW_ENOMEM;
  case AVERROR(ECONNREFUSED):
  case AVERROR(ECONNRESET):
  case AVERROR(ECONNABORTED):
  case AVERROR(EPIPE):
  case AVERROR(ENETUNREACH):
  case AVERROR(EHOSTUNREACH):
  case AVERROR_EOF:
    return TW_ECONN;
  case AVERROR_HTTP_UNAUTHORIZED:
  case AVERROR(EACCES):
  case AVERROR(EPERM):
    return TW_EAUTH;
  case AVERROR_STREAM_NOT_FOUND:
  case AVERROR_HTTP_NOT_FOUND:
  case AVERROR(ENOENT):
    return TW_ENOENT;
  case AVERROR_PROTOCOL_NOT_FOUND:
  case AVERROR(EINVAL):
    return TW_EINVAL;
  case AVERROR_INVALIDDATA:
    return TW_EPROTO;
  default:
    return TW_EIO;
  }
}

static int av_fail(const tw_rtsp *r, tw_err *err, int averr, const char *step) {
  int code = av_code(r, averr);
  if (code == TW_ECANCELED)
    return tw_err_set(err, code, "%s: %s: interrupted", r->url, step);
  if (code == TW_ETIMEDOUT)
    return tw_err_set(err, code, "%s: %s: no answer within %d ms", r->url, step,
                      r->o.timeout_ms);
  char msg[AV_ERROR_MAX_STRING_SIZE];
  av_strerror(averr, msg, sizeof msg);
  return tw_err_set(err, code, "%s: %s: %s", r->url, step, msg);
}

/* --- Connection -------------------------------------------------------------
 */

static void disconnect(tw_rtsp *r) {
  if (r->fmt != NULL) {
    /* TEARDOWN is sent without waiting for the reply; bound it anyway. */
    arm(r);
    avformat_close_input(&r->fmt);
  }
  avcodec_free_context(&r->dec);
  r->deadline_ns = 0;
  r->draining = false;
  r->have_due = false;
  r->wall_base_ns = INT64_MIN;
}

static void take_wall_base(tw_rtsp *r) {
  if (r->wall_base_ns == INT64_MIN && r->fmt != NULL &&
      r->fmt->start_time_realtime != AV_NOPTS_VALUE &&
      r->fmt->start_time_realtime > 0)
    r->wall_base_ns = r->fmt->start_time_realtime * 1000;
}

/* Opens the input and its video decoder into r->fmt/r->dec. */
static int connect_input(tw_rtsp *r, tw_err *err) {
  AVDictionary *opts = NULL;
  int ret = 0, rc = TW_OK;
  if (r->network && strncmp(r->url, "rtsp", 4) == 0) {
    if (av_dict_set(&opts, "rtsp_transport", r->o.tcp ? "tcp" : "udp", 0) < 0 ||
        av_dict_set(&opts, "allowed_media_types", "video", 0) < 0) {
      av_dict_free(&opts);
      return tw_err_set(err, TW_ENOMEM, "%s: options", r->url);
    }
  }
  AVFormatContext *fmt = avformat_alloc_context();
  if (fmt == NULL) {
    av_dict_free(&opts);
    return tw_err_set(err, TW_ENOMEM, "%s: format context", r->url);
  }
  /* A live stream's rate is in its timestamps: do not hold the first
   * frames back to estimate it (each held frame is latency). */
  fmt->fps_probe_size = 0;
  fmt->interrupt_callback.callback = interrupt_cb;
  fmt->interrupt_callback.opaque = r;
  arm(r);
  ret = avformat_open_input(&fmt, r->url, NULL, &opts); /* frees fmt on error */
  av_dict_free(&opts);
  if (ret < 0) {
    r->deadline_ns = 0;
    return av_fail(r, err, ret, "open");
  }
  r->fmt = fmt;
  arm(r);
  ret = avformat_find_stream_info(fmt, NULL);
  if (ret < 0) {
    rc = av_fail(r, err, ret, "reading the stream's parameters");
    goto fail;
  }
  ret = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
  if (ret < 0) {
    rc = tw_err_set(err, TW_ENOTSUP, "%s: no video stream", r->url);
    goto fail;
  }
  r->vstream = ret;
  AVStream *st = fmt->streams[ret];
  r->tb = st->time_base;
  const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (codec == NULL) {
    rc = tw_err_set(err, TW_ENOTSUP, "%s: no decoder for the video codec '%s'",
                    r->url, avcodec_get_name(st->codecpar->codec_id));
    goto fail;
  }
  r->dec = avcodec_alloc_context3(codec);
  if (r->dec == NULL) {
    rc = tw_err_set(err, TW_ENOMEM, "%s: decoder context", r->url);
    goto fail;
  }
  ret = avcodec_parameters_to_context(r->dec, st->codecpar);
  if (ret < 0) {
    rc = av_fail(r, err, ret, "decoder parameters");
    goto fail;
  }
  r->dec->pkt_timebase = st->time_base;
  r->dec->thread_count = r->o.threads;
  if (r->o.extract == TW_RTSP_KEYFRAMES)
    r->dec->skip_frame = AVDISCARD_NONKEY;
  ret = avcodec_open2(r->dec, codec, NULL);
  if (ret < 0) {
    rc = av_fail(r, err, ret, "opening the decoder");
    goto fail;
  }
  r->deadline_ns = 0;
  r->wall_base_ns = INT64_MIN;
  r->have_due = false;
  r->draining = false;
  take_wall_base(r);
  return TW_OK;
fail:
  disconnect(r);
  return rc;
}

/* --- Frames -----------------------------------------------------------------
 */

/* Whether the decoded frame r->frame is extracted; its pts_ns given. */
static bool pick(tw_rtsp *r, int64_t pts_ns) {
  switch (r->o.extract) {
  case TW_RTSP_KEYFRAMES:
    return r->frame->key_frame != 0;
  case TW_RTSP_RATE:
    if (pts_ns == INT64_MIN)
      return true;
    if (!r->have_due || pts_ns >= r->next_due_ns) {
      /* Slots of one period: keep the grid unless the stream jumped. */
      if (r->have_due && pts_ns - r->next_due_ns < r->period_ns)
        r->next_due_ns += r->period_ns;
      else
        r->next_due_ns = pts_ns + r->period_ns;
      r->have_due = true;
      return true;
    }
    return false;
  case TW_RTSP_ALL:
  default:
    return true;
  }
}

/* Converts r->frame into r->buf and fills *out. */
static int emit(tw_rtsp *r, int64_t pts_ns, tw_rtsp_frame *out, tw_err *err) {
  AVFrame *f = r->frame;
  int w = r->o.width > 0 ? r->o.width : f->width;
  int h = r->o.height > 0 ? r->o.height : f->height;
  int size = av_image_get_buffer_size(r->out_fmt, w, h, 1);
  if (size < 0)
    return tw_err_set(err, TW_EINVAL, "%s: a %dx%d %s picture", r->url, w, h,
                      r->out_name);
  if ((size_t)size > r->buf_cap) {
    uint8_t *nb = tw_alloc((size_t)size);
    if (nb == NULL)
      return tw_err_set(err, TW_ENOMEM, "%s: picture of %d bytes", r->url,
                        size);
    tw_free(r->buf);
    r->buf = nb;
    r->buf_cap = (size_t)size;
  }
  uint8_t *dst[4];
  int dst_ls[4];
  av_image_fill_arrays(dst, dst_ls, r->buf, r->out_fmt, w, h, 1);
  if ((enum AVPixelFormat)f->format == r->out_fmt && w == f->width &&
      h == f->height) {
    av_image_copy_to_buffer(r->buf, size, (const uint8_t *const *)f->data,
                            f->linesize, r->out_fmt, w, h, 1);
  } else {
    r->sws = sws_getCachedContext(r->sws, f->width, f->height,
                                  (enum AVPixelFormat)f->format, w, h,
                                  r->out_fmt, SWS_BILINEAR, NULL, NULL, NULL);
    if (r->sws == NULL)
      return tw_err_set(err, TW_ENOTSUP,
                        "%s: no conversion from %s %dx%d to %s %dx%d", r->url,
                        av_get_pix_fmt_name((enum AVPixelFormat)f->format),
                        f->width, f->height, r->out_name, w, h);
    sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0,
              f->height, dst, dst_ls);
  }
  out->seq = r->seq++;
  out->generation = r->generation;
  out->pts_ns = pts_ns;
  out->wall_ns = (r->wall_base_ns != INT64_MIN && pts_ns != INT64_MIN)
                     ? r->wall_base_ns + pts_ns
                     : INT64_MIN;
  out->keyframe = f->key_frame != 0;
  out->width = w;
  out->height = h;
  out->pix_fmt = r->out_name;
  out->data = r->buf;
  out->size = (size_t)size;
  out->stride = dst_ls[0];
  r->st.extracted++;
  r->attempts = 0;
  r->backoff_ms = r->o.reconnect_min_ms;
  return TW_OK;
}

/* The input failed or ended (averr): start draining the decoder. */
static void lose(tw_rtsp *r, int averr) {
  tw_err_init(&r->lost);
  r->lost_eof = averr == AVERROR_EOF;
  if (averr == AVERROR_EOF)
    r->lost_code =
        tw_err_set(&r->lost, TW_ECONN, "%s: the stream ended", r->url);
  else
    r->lost_code = av_fail(r, &r->lost, averr, "reading");
  r->deadline_ns = 0;
  r->draining = true;
  (void)avcodec_send_packet(r->dec, NULL);
}

/* Reconnects after a loss (r->lost) with backoff; TW_OK once connected. */
static int reconnect(tw_rtsp *r, tw_err *err) {
  tw_err last;
  tw_err_init(&last);
  for (;;) {
    if (r->o.max_reconnects >= 0 && r->attempts >= r->o.max_reconnects) {
      if (r->attempts == 0) {
        (void)tw_err_copy(err, &r->lost);
        return r->lost.code;
      }
      return tw_err_set(err, last.code,
                        "%s (%d reconnection attempts failed, the last: %s)",
                        tw_err_msg(&r->lost), r->attempts, tw_err_msg(&last));
    }
    if (!nap(r, r->backoff_ms))
      return tw_err_set(err, TW_ECANCELED, "%s: interrupted", r->url);
    r->attempts++;
    int next = r->backoff_ms * 2;
    r->backoff_ms = next > r->o.reconnect_max_ms ? r->o.reconnect_max_ms : next;
    tw_err_init(&last);
    int rc = connect_input(r, &last);
    if (rc == TW_OK) {
      r->generation++;
      r->st.reconnects++;
      return TW_OK;
    }
    r->st.reconnect_failures++;
    if (rc == TW_ECANCELED) {
      (void)tw_err_copy(err, &last);
      return rc;
    }
  }
}

int tw_rtsp_read(tw_rtsp *r, tw_rtsp_frame *out, tw_err *err) {
  for (;;) {
    if (interrupted(r))
      return tw_err_set(err, TW_ECANCELED, "%s: interrupted", r->url);
    if (r->ended)
      return TW_RTSP_END;
    if (r->fmt == NULL) {
      int rc = reconnect(r, err);
      if (rc != TW_OK)
        return rc;
    }
    int ret = avcodec_receive_frame(r->dec, r->frame);
    if (ret == 0) {
      r->st.decoded++;
      int64_t pts = r->frame->best_effort_timestamp;
      int64_t pts_ns =
          pts == AV_NOPTS_VALUE
              ? INT64_MIN
              : av_rescale_q(pts, r->tb, (AVRational){1, 1000000000});
      int rc = TW_OK;
      /* FFmpeg 5.1's RTSP input can leave the first picture of a
       * connection without a timestamp (and torn, when it began before
       * the connection did): it cannot be placed in time, and is dropped. */
      bool keep = !(r->network && pts_ns == INT64_MIN) && pick(r, pts_ns);
      if (keep)
        rc = emit(r, pts_ns, out, err);
      else
        r->st.skipped++;
      av_frame_unref(r->frame);
      if (keep)
        return rc;
      continue;
    }
    if (ret == AVERROR_EOF || (ret == AVERROR(EAGAIN) && r->draining)) {
      /* Drained after a loss: a file ends, a stream reconnects. */
      if (!r->draining) {
        r->lost_eof = false;
        tw_err_init(&r->lost);
        r->lost_code =
            tw_err_set(&r->lost, TW_ECONN, "%s: the decoder ended", r->url);
      }
      disconnect(r);
      if (!r->network) {
        if (r->lost_eof) {
          r->ended = true;
          return TW_RTSP_END;
        }
        r->ended = true; /* a failed file is not reopened either */
        (void)tw_err_copy(err, &r->lost);
        return r->lost.code;
      }
      continue;
    }
    if (ret == AVERROR(ENOMEM))
      return tw_err_set(err, TW_ENOMEM, "%s: decoding", r->url);
    if (ret != AVERROR(EAGAIN)) {
      /* A frame the decoder could not produce; the next may do. */
      r->st.decode_errors++;
      continue;
    }
    /* The decoder wants input. */
    arm(r);
    ret = av_read_frame(r->fmt, r->pkt);
    r->deadline_ns = 0;
    if (ret < 0) {
      if (interrupted(r))
        return tw_err_set(err, TW_ECANCELED, "%s: interrupted", r->url);
      lose(r, ret);
      continue;
    }
    take_wall_base(r);
    if (r->pkt->stream_index == r->vstream) {
      r->st.packets++;
      r->st.bytes += (uint64_t)r->pkt->size;
      ret = avcodec_send_packet(r->dec, r->pkt);
      if (ret < 0 && ret != AVERROR(EAGAIN))
        r->st.decode_errors++;
    }
    av_packet_unref(r->pkt);
  }
}

/* --- Open and close ---------------------------------------------------------
 */

static int check_opts(const tw_rtsp_opts *o, tw_err *err) {
  if (o->url == NULL || o->url[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "rtsp: url: an URL is needed");
  if ((unsigned)o->extract > TW_RTSP_KEYFRAMES)
    return tw_err_set(err, TW_EINVAL, "%s: extract: unknown mode %d", o->url,
                      (int)o->extract);
  if (o->extract == TW_RTSP_RATE && !(o->rate_hz > 0 && isfinite(o->rate_hz)))
    return tw_err_set(err, TW_EINVAL,
                      "%s: rate_hz: %g, a positive rate is needed", o->url,
                      o->rate_hz);
  if (o->width < 0 || o->height < 0 || (o->width == 0) != (o->height == 0) ||
      o->width > 16384 || o->height > 16384)
    return tw_err_set(err, TW_EINVAL,
                      "%s: width x height: %d x %d, both 1 to 16384 or both 0",
                      o->url, o->width, o->height);
  if (o->timeout_ms < 0 || o->reconnect_min_ms < 0 || o->reconnect_max_ms < 0 ||
      o->max_reconnects < -1 || o->threads < 0)
    return tw_err_set(err, TW_EINVAL,
                      "%s: timeout_ms, reconnect_*_ms, threads must be >= 0 "
                      "and max_reconnects >= -1",
                      o->url);
  return TW_OK;
}

int tw_rtsp_open(const tw_rtsp_opts *o, tw_rtsp **out, tw_err *err) {
  int rc = check_opts(o, err);
  if (rc != TW_OK)
    return rc;
  const char *pf = o->pix_fmt != NULL ? o->pix_fmt : "rgb24";
  enum AVPixelFormat fmt = av_get_pix_fmt(pf);
  if (fmt == AV_PIX_FMT_NONE || !sws_isSupportedOutput(fmt))
    return tw_err_set(err, TW_EINVAL,
                      "%s: pix_fmt: '%s' is not a pixel format FFmpeg can "
                      "convert to",
                      o->url, pf);
  tw_rtsp *r = tw_calloc(1, sizeof *r);
  if (r == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: connector", o->url);
  r->o = *o;
  r->url = tw_strdup(o->url);
  r->pkt = av_packet_alloc();
  r->frame = av_frame_alloc();
  if (r->url == NULL || r->pkt == NULL || r->frame == NULL) {
    tw_rtsp_close(r);
    return tw_err_set(err, TW_ENOMEM, "%s: connector", o->url);
  }
  r->o.url = r->url;
  r->out_fmt = fmt;
  r->out_name = av_get_pix_fmt_name(fmt);
  r->o.pix_fmt = r->out_name;
  if (r->o.timeout_ms == 0)
    r->o.timeout_ms = DEFAULT_TIMEOUT_MS;
  if (r->o.reconnect_min_ms == 0)
    r->o.reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
  if (r->o.reconnect_max_ms == 0)
    r->o.reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
  if (r->o.reconnect_max_ms < r->o.reconnect_min_ms)
    r->o.reconnect_max_ms = r->o.reconnect_min_ms;
  r->backoff_ms = r->o.reconnect_min_ms;
  if (r->o.extract == TW_RTSP_RATE)
    r->period_ns = (int64_t)llround(1e9 / r->o.rate_hz);
  r->network =
      strstr(r->url, "://") != NULL && strncmp(r->url, "file:", 5) != 0;
  r->wall_base_ns = INT64_MIN;
  atomic_init(&r->interrupted, false);
  rc = connect_input(r, err);
  if (rc != TW_OK) {
    tw_rtsp_close(r);
    return rc;
  }
  *out = r;
  return TW_OK;
}

void tw_rtsp_stats_get(const tw_rtsp *r, tw_rtsp_stats *out) {
  *out = r->st;
  out->reconnects = r->generation;
}

void tw_rtsp_size(const tw_rtsp *r, int *width, int *height) {
  int w = r->o.width, h = r->o.height;
  if (w == 0 && r->dec != NULL) {
    w = r->dec->width;
    h = r->dec->height;
  }
  if (width != NULL)
    *width = w;
  if (height != NULL)
    *height = h;
}

void tw_rtsp_close(tw_rtsp *r) {
  if (r == NULL)
    return;
  disconnect(r);
  sws_freeContext(r->sws);
  av_packet_free(&r->pkt);
  av_frame_free(&r->frame);
  tw_free(r->buf);
  tw_free(r->url);
  tw_free(r);
}
