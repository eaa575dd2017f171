/*
 * twin/rtsp.h - the RTSP video connector: frames from an IP camera (or
 * any input libavformat opens, such as a recorded file), decoded, picked
 * (every frame, a rate, or keyframes only), converted to the pixel format
 * a twin wants and stamped with wall-clock time.
 *
 * Built on FFmpeg 5.1 (libavformat's RTSP/RTP demuxer, libavcodec,
 * libswscale). RTP runs interleaved on the RTSP TCP connection by default
 * (tcp = true) or over UDP. Every blocking step (connecting, the RTSP
 * handshake, waiting for a packet) is bounded by timeout_ms through
 * libavformat's interrupt callback, and tw_rtsp_interrupt() makes one
 * return at once.
 *
 * Wall-clock time. A camera's RTCP sender reports pair an NTP time (its
 * wall clock) with an RTP timestamp. When the first report arrives,
 * FFmpeg's RTSP demuxer sets AVFormatContext.start_time_realtime to the
 * NTP time, in Unix microseconds, of the RTP timestamp that is the
 * stream's pts 0 (the report's NTP time less the report's RTP offset from
 * the first timestamp: rtpdec.c's first_rtcp_ntp_time and rtcp_ts_offset,
 * rtsp.c's ff_rtsp_fetch_packet). A frame's wall_ns is then
 * start_time_realtime * 1000 + pts_ns. Accuracy: exact to the camera's
 * own pairing of NTP and RTP time at that first report, to a microsecond;
 * for a single video stream FFmpeg 5.1 keeps the RTP clock afterwards, so
 * the stamps drift from the camera's wall clock by the drift of its RTP
 * clock against it (its crystal, typically under 50 ppm: 0.18 s an hour
 * at worst), reset at every reconnection. The stamps are the camera's
 * time: they are as good as the camera's clock sync (NTP/PTP), not the
 * host's. Frames before the first report have wall_ns = INT64_MIN; an
 * input without sender reports (a file) never has one. Measured against
 * tests/support/rtsp_camera (GStreamer 1.22) on loopback, 320x240 at
 * 25 fps: frames are delivered 150 to 200 ms after their wall_ns, of which
 * about 80 ms is GStreamer's first report pairing its times apart from
 * its later ones, the rest transport, decoding and the sender's latency.
 * A network frame without a timestamp (FFmpeg 5.1 can give the first
 * picture of a connection none) is dropped and counted skipped.
 *
 * Reconnection. When the input fails or ends (the camera drops, stalls
 * for timeout_ms, says BYE), the frames the decoder holds are delivered,
 * then tw_rtsp_read reconnects with exponential backoff (reconnect_min_ms,
 * doubling, at most reconnect_max_ms) up to max_reconnects attempts in a
 * row (-1: forever); a delivered frame resets the count. seq continues
 * across reconnections and generation counts them; pts_ns restarts with
 * each connection's stream. A finite input that is not a network stream
 * (a file) is not reopened: its end is TW_RTSP_END.
 *
 * Thread safety: a tw_rtsp is used by one thread at a time, except
 * tw_rtsp_interrupt(), which any thread may call at any time while the
 * object is open. Frames are borrowed from the object.
 *
 * Errors: TW_EINVAL for bad options (naming the option: an unknown
 * pix_fmt, a URL that is empty or that libavformat cannot parse, negative
 * sizes); TW_ECONN when the camera refuses or drops the connection and
 * the reconnections run out; TW_ETIMEDOUT when it stalls beyond timeout_ms
 * (and the reconnections run out); TW_ENOTSUP when the input has no video
 * stream or no decoder for it; TW_ENOENT when the camera has no such
 * path (RTSP 404) or a file is missing; TW_EAUTH when the camera wants
 * credentials; TW_EPROTO for a malformed stream; TW_ECANCELED after
 * tw_rtsp_interrupt(); TW_ENOMEM. Messages name the URL and the step that
 * failed.
 */
#ifndef TWIN_RTSP_H
#define TWIN_RTSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* Returned by tw_rtsp_read (a positive value, not an error) at the end of a
 * finite input such as a file. */
#define TW_RTSP_END 1

typedef enum tw_rtsp_extract {
  TW_RTSP_ALL = 0,  /* every decoded frame */
  TW_RTSP_RATE,     /* at most rate_hz frames per second of stream time */
  TW_RTSP_KEYFRAMES /* keyframes only; the others are not even decoded */
} tw_rtsp_extract;

typedef struct tw_rtsp_opts {
  const char *url; /* rtsp://host[:port]/path, or a file libavformat reads */
  bool tcp;        /* RTP interleaved on the RTSP connection, else UDP */
  tw_rtsp_extract extract;
  double rate_hz;      /* TW_RTSP_RATE: > 0 */
  const char *pix_fmt; /* FFmpeg's name: "rgb24" (NULL), "gray", "bgr24",
                          "yuv420p", ...; unknown: TW_EINVAL */
  int width, height;   /* output size; 0: the stream's (both or neither) */
  int timeout_ms;      /* bound of each blocking step; 0: 5000 */
  int reconnect_min_ms, reconnect_max_ms; /* backoff; 0: 200 and 5000 */
  int max_reconnects; /* attempts in a row before giving up; -1: forever */
  int threads;        /* decoder threads; 0: as many as cores */
} tw_rtsp_opts;

/* The defaults: tcp, TW_RTSP_ALL, rgb24, the stream's size, 5 s timeout,
 * backoff 200 ms to 5 s, reconnect forever, automatic threads. */
TW_API void tw_rtsp_opts_init(tw_rtsp_opts *o);

typedef struct tw_rtsp_frame {
  uint64_t seq;        /* frames delivered, from 0, across reconnections */
  uint32_t generation; /* reconnections so far */
  int64_t pts_ns;      /* stream time of this connection */
  int64_t wall_ns;     /* Unix time from RTCP sender reports, or INT64_MIN */
  bool keyframe;
  int width, height;
  const char *pix_fmt; /* static string */
  /* The picture: planes one after another, each tightly packed (line size
   * = width * bytes per pixel of the plane); stride is the first plane's
   * line size. Borrowed: valid until the next tw_rtsp_read or
   * tw_rtsp_close. */
  const uint8_t *data;
  size_t size;
  int stride;
} tw_rtsp_frame;

typedef struct tw_rtsp_stats {
  uint64_t packets;            /* video packets read */
  uint64_t bytes;              /* their payload bytes */
  uint64_t decoded;            /* frames out of the decoder */
  uint64_t extracted;          /* frames delivered */
  uint64_t skipped;            /* decoded frames not delivered (RATE) */
  uint64_t decode_errors;      /* packets or frames the decoder refused */
  uint64_t reconnects;         /* successful reconnections (= generation) */
  uint64_t reconnect_failures; /* reconnection attempts that failed */
} tw_rtsp_stats;

typedef struct tw_rtsp tw_rtsp;

/* Checks o, connects to the camera (one attempt, bounded by timeout_ms),
 * finds its video stream and opens the decoder. The strings of o are
 * copied. On failure *out is untouched and nothing is left open. */
TW_API int tw_rtsp_open(const tw_rtsp_opts *o, tw_rtsp **out, tw_err *err);

/* Blocks until the next extracted frame and fills *out (borrowed, see
 * tw_rtsp_frame). Reconnects as the header says. Returns TW_OK,
 * TW_RTSP_END at the end of a file, or an error (see the top); after an
 * error other than a reconnectable one the object only closes. */
TW_API int tw_rtsp_read(tw_rtsp *r, tw_rtsp_frame *out, tw_err *err);

/* Makes a blocked or later tw_rtsp_read of r (its reconnections and
 * backoff waits included) return TW_ECANCELED promptly, within about
 * 100 ms; sticky. Any thread. (tw_rtsp_open, before r exists, is bounded
 * by timeout_ms instead.) */
TW_API void tw_rtsp_interrupt(tw_rtsp *r);

/* Counters so far (across reconnections). */
TW_API void tw_rtsp_stats_get(const tw_rtsp *r, tw_rtsp_stats *out);

/* The output size, known after open: the stream's or the requested. */
TW_API void tw_rtsp_size(const tw_rtsp *r, int *width, int *height);

/* Closes the connection (sending TEARDOWN) and frees r; NULL is a no-op. */
TW_API void tw_rtsp_close(tw_rtsp *r);

TW_EXTERN_C_END

#endif /* TWIN_RTSP_H */
