/*
 * cmd_calibrate.c - `twin calibrate`: fits the parameters a twin's
 * calibrate: section names to a recording (twin/calibrate.h), with a
 * progress line on a terminal or JSON lines, then writes the fitted
 * parameters as a twin-compose parameter file (--out) and a report
 * (--report DIR: report.md, loss.svg, trajectories.svg).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

typedef struct progress {
  cli_ctx *cli;
  bool json, tty;
  uint64_t max_iters;
  double last_draw;
} progress;

static int on_progress(void *ud, const tw_optim_progress *p) {
  progress *pr = ud;
  if (pr->json) {
    (void)fprintf(pr->cli->out,
                  "{\"iteration\":%llu,\"evaluations\":%llu,\"loss\":%.17g,"
                  "\"grad_norm\":%.6g,\"step\":%.6g,\"elapsed_s\":%.3f}\n",
                  (unsigned long long)p->iteration,
                  (unsigned long long)p->evaluations, p->loss, p->grad_norm,
                  p->step_norm, p->elapsed_s);
    (void)fflush(pr->cli->out);
    return 0;
  }
  if (!pr->tty) {
    if (p->iteration % 25 == 0)
      (void)fprintf(pr->cli->errs,
                    "calibrate: iteration %llu, loss %.6g, |grad| %.3g, %.1f "
                    "s\n",
                    (unsigned long long)p->iteration, p->loss, p->grad_norm,
                    p->elapsed_s);
    return 0;
  }
  if (p->elapsed_s - pr->last_draw < 0.05 && p->iteration > 1)
    return 0;
  pr->last_draw = p->elapsed_s;
  double frac =
      pr->max_iters ? (double)p->iteration / (double)pr->max_iters : 0;
  if (frac > 1)
    frac = 1;
  char bar[21];
  int fill = (int)(frac * 20);
  for (int i = 0; i < 20; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[20] = '\0';
  double eta = frac > 0 ? p->elapsed_s * (1 - frac) / frac : 0;
  (void)fprintf(pr->cli->errs,
                "\r[%s] iter %llu/%llu  loss %.4e  |grad| %.2e  ETA %4.1f s ",
                bar, (unsigned long long)p->iteration,
                (unsigned long long)pr->max_iters, p->loss, p->grad_norm, eta);
  (void)fflush(pr->cli->errs);
  return 0;
}

/* --- The parameter file ------------------------------------------------ */

static int write_overlay(const char *path, const char *twin,
                         const tw_calib_result *r, tw_err *err) {
  tw_buf b = TW_BUF_INIT;
  (void)tw_buf_printf(&b,
                      "# Parameters of twin %s fitted by twin calibrate "
                      "(%s, %llu iterations): training loss %.6g -> %.6g.\n"
                      "# Lay it over the twin with -p/--params.\n",
                      twin, r->method, (unsigned long long)r->opt.iterations,
                      r->loss_initial, r->loss);
  /* Grouped by component, in the order they come. */
  for (size_t i = 0; i < r->nparams; i++) {
    const char *dot = strchr(r->params[i].name, '.');
    size_t clen = dot != NULL ? (size_t)(dot - r->params[i].name) : 0;
    bool first = true;
    for (size_t k = 0; k < i; k++)
      if (strncmp(r->params[k].name, r->params[i].name, clen) == 0 &&
          r->params[k].name[clen] == '.')
        first = false;
    if (!first)
      continue;
    (void)tw_buf_printf(&b, "%.*s:\n", (int)clen, r->params[i].name);
    for (size_t k = i; k < r->nparams; k++) {
      const tw_calib_param *p = &r->params[k];
      if (strncmp(p->name, r->params[i].name, clen) != 0 ||
          p->name[clen] != '.')
        continue;
      (void)tw_buf_printf(&b, "  %s: ", p->name + clen + 1);
      if (p->size == 1) {
        (void)tw_buf_printf(&b, "%.17g\n", p->fitted[0]);
        continue;
      }
      (void)tw_buf_puts(&b, "[");
      for (size_t e = 0; e < p->size; e++)
        (void)tw_buf_printf(&b, "%s%.17g", e ? ", " : "", p->fitted[e]);
      (void)tw_buf_puts(&b, "]\n");
    }
  }
  int rc = b.data != NULL ? tw_file_write_atomic(path, b.data, b.len, err)
                          : tw_err_set(err, TW_ENOMEM, "out of memory");
  tw_buf_fini(&b);
  return rc;
}

/* --- The report --------------------------------------------------------- */

/* An SVG polyline of n values (NaN skipped) scaled into the plot box. */
static void polyline(tw_buf *b, const double *v, size_t n, size_t stride,
                     double lo, double hi, bool logy, const char *style) {
  const double W = 760, H = 300, X0 = 60, Y0 = 20;
  (void)tw_buf_printf(b, "<polyline fill=\"none\" %s points=\"", style);
  size_t step = n > 2000 ? n / 2000 : 1;
  for (size_t i = 0; i < n; i += step) {
    double y = v[i * stride];
    if (!isfinite(y) || (logy && y <= 0))
      continue;
    double yy = logy ? log10(y) : y;
    double px = X0 + W * (double)i / (double)(n > 1 ? n - 1 : 1);
    double py = Y0 + H * (1 - (yy - lo) / (hi > lo ? hi - lo : 1));
    (void)tw_buf_printf(b, "%.1f,%.1f ", px, py);
  }
  (void)tw_buf_puts(b, "\"/>\n");
}

/* Measured samples as dots (at most about 400 of them). */
static void dots(tw_buf *b, const double *v, size_t n, size_t stride, double lo,
                 double hi, const char *fill) {
  const double W = 760, H = 300, X0 = 60, Y0 = 20;
  size_t step = n > 400 ? n / 400 : 1;
  for (size_t i = 0; i < n; i += step) {
    double y = v[i * stride];
    if (!isfinite(y))
      continue;
    double px = X0 + W * (double)i / (double)(n > 1 ? n - 1 : 1);
    double py = Y0 + H * (1 - (y - lo) / (hi > lo ? hi - lo : 1));
    (void)tw_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.6\" %s/>\n",
                        px, py, fill);
  }
}

/* Tick positions for [lo, hi]: multiples of a step of 1, 2, 2.5 or 5
 * times a power of ten, about 4 to 8 of them (matplotlib's MaxNLocator
 * steps). Returns how many were written to t (at most max). */
static size_t nice_ticks(double lo, double hi, double *t, size_t max) {
  if (!(hi > lo) || !isfinite(lo) || !isfinite(hi)) {
    t[0] = lo;
    return 1;
  }
  double raw = (hi - lo) / 7, mag = pow(10, floor(log10(raw)));
  static const double steps[] = {1, 2, 2.5, 5, 10};
  double step = 10 * mag;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
    if (steps[i] * mag >= raw) {
      step = steps[i] * mag;
      break;
    }
  size_t n = 0;
  for (double k = ceil(lo / step - 1e-9); n < max; k++) {
    double v = k * step;
    if (v > hi + step * 1e-9)
      break;
    t[n++] = fabs(v) < step * 1e-9 ? 0 : v;
  }
  return n;
}

/* s as XML text: names and channels come from the twin's file. */
static void xml_text(tw_buf *b, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '&':
      (void)tw_buf_puts(b, "&amp;");
      break;
    case '<':
      (void)tw_buf_puts(b, "&lt;");
      break;
    case '>':
      (void)tw_buf_puts(b, "&gt;");
      break;
    default:
      (void)tw_buf_putc(b, *s);
    }
  }
}

/* An axis label: name, then " (unit)" unless unit is "". */
static void axis_label(tw_buf *b, const char *name, const char *unit) {
  xml_text(b, name);
  if (*unit) {
    (void)tw_buf_puts(b, " (");
    xml_text(b, unit);
    (void)tw_buf_puts(b, ")");
  }
}

/* The plot box's frame, title, axis labels, and ticks with grid lines:
 * x over [x0, x1] in xunit, y over [lo, hi] in yunit (decades of 10 when
 * logy: lo and hi are then log10 values). Units may be "". */
static void svg_open(tw_buf *b, const char *title, double x0, double x1,
                     const char *xlabel, const char *xunit, double lo,
                     double hi, bool logy, const char *ylabel,
                     const char *yunit) {
  const double W = 760, H = 300, X0 = 60, Y0 = 20;
  (void)tw_buf_printf(
      b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"840\" "
         "height=\"380\" font-family=\"sans-serif\" font-size=\"12\">\n"
         "<rect width=\"840\" height=\"380\" fill=\"white\"/>\n"
         "<text x=\"60\" y=\"14\">");
  xml_text(b, title);
  (void)tw_buf_puts(b, "</text>\n");
  double t[16];
  size_t n = nice_ticks(lo, hi, t, 16);
  for (size_t i = 0; i < n; i++) {
    double py = Y0 + H * (1 - (hi > lo ? (t[i] - lo) / (hi - lo) : 0.5));
    (void)tw_buf_printf(b,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                        "y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
                        X0, py, X0 + W, py, X0 - 4, py + 4);
    if (logy && t[i] == floor(t[i])) /* a decade */
      (void)tw_buf_printf(b, "1e%.0f", t[i]);
    else if (logy) /* less than a decade spanned */
      (void)tw_buf_printf(b, "%.3g", pow(10, t[i]));
    else
      (void)tw_buf_printf(b, "%.4g", t[i]);
    (void)tw_buf_puts(b, "</text>\n");
  }
  n = nice_ticks(x0, x1, t, 16);
  for (size_t i = 0; i < n; i++) {
    double px = X0 + W * (x1 > x0 ? (t[i] - x0) / (x1 - x0) : 0);
    (void)tw_buf_printf(b,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                        "y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" "
                        "text-anchor=\"middle\">%.4g</text>\n",
                        px, Y0, px, Y0 + H, px, Y0 + H + 14, t[i]);
  }
  (void)tw_buf_printf(
      b, "<rect x=\"60\" y=\"20\" width=\"760\" height=\"300\" fill=\"none\" "
         "stroke=\"#999\"/>\n"
         "<text x=\"440\" y=\"352\" text-anchor=\"middle\">");
  axis_label(b, xlabel, xunit);
  (void)tw_buf_puts(b, "</text>\n<text x=\"14\" y=\"170\" "
                       "text-anchor=\"middle\" "
                       "transform=\"rotate(-90 14 170)\">");
  axis_label(b, ylabel, yunit);
  (void)tw_buf_puts(b, "</text>\n");
}

static int write_report(const char *dir, const char *twin,
                        const char *twin_path, const char *data,
                        const tw_calib_result *r, tw_compose *c, tw_err *err) {
  if (mkdir(dir, 0777) != 0 && errno != EEXIST)
    return tw_err_sys(err, errno, "%s: cannot make the report directory", dir);
  tw_buf b = TW_BUF_INIT, path = TW_BUF_INIT;
  int rc = TW_OK;
  /* loss.svg: the loss per iteration, log scale. */
  if (r->ncurve > 0) {
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < r->ncurve; i++)
      if (r->curve[i] > 0 && isfinite(r->curve[i])) {
        lo = fmin(lo, log10(r->curve[i]));
        hi = fmax(hi, log10(r->curve[i]));
      }
    if (isfinite(lo)) {
      /* Whole decades when the loss spans one or more. */
      if (hi - lo >= 1) {
        lo = floor(lo);
        hi = ceil(hi);
      }
      svg_open(&b, "training loss per iteration", 0,
               (double)(r->ncurve > 1 ? r->ncurve - 1 : 1), "iteration", "", lo,
               hi, true, "loss (log scale)", "");
      polyline(&b, r->curve, r->ncurve, 1, lo, hi, true,
               "stroke=\"#1f77b4\" stroke-width=\"1.5\"");
      (void)tw_buf_puts(&b, "</svg>\n");
      (void)tw_buf_printf(&path, "%s/loss.svg", dir);
      rc = tw_file_write_atomic(path.data, b.data, b.len, err);
    }
  }
  /* trajectories.svg: each loss output, measured / start / fitted. */
  const tw_compose_calibration *cal = tw_compose_calibration_get(c);
  tw_graph *g = tw_compose_graph(c);
  for (size_t l = 0; rc == TW_OK && cal != NULL && l < cal->nloss; l++) {
    size_t col = 0, size = 0, off = 0;
    const char *unit = "";
    for (size_t i = 0; i < tw_graph_noutputs(g); i++) {
      size_t sz;
      const char *n = tw_graph_output_name(g, i, &sz);
      if (strcmp(n, cal->loss[l].output) == 0) {
        col = off;
        size = sz;
        unit = tw_graph_output_unit(g, i);
      }
      off += sz;
    }
    if (size == 0)
      continue;
    size_t n = (size_t)r->ticks;
    double lo = INFINITY, hi = -INFINITY;
    const double *series[3] = {r->measured + col, r->y_initial + col,
                               r->y_fitted + col};
    for (int s = 0; s < 3; s++)
      for (size_t k = 0; k < n; k++) {
        double v = series[s][k * r->ny];
        if (isfinite(v)) {
          lo = fmin(lo, v);
          hi = fmax(hi, v);
        }
      }
    tw_buf_reset(&b);
    char title[256];
    (void)snprintf(title, sizeof title,
                   "%s (%s): measured (grey dots), start (orange), fitted "
                   "(blue), %.0f s",
                   cal->loss[l].output, cal->loss[l].channel,
                   (double)n * r->dt);
    svg_open(&b, title, 0, (double)(n > 1 ? n - 1 : 1) * r->dt, "time", "s", lo,
             hi, false, cal->loss[l].output, unit);
    polyline(&b, series[1], n, r->ny, lo, hi, false,
             "stroke=\"#ff7f0e\" stroke-width=\"1\"");
    polyline(&b, series[2], n, r->ny, lo, hi, false,
             "stroke=\"#1f77b4\" stroke-width=\"1.5\"");
    dots(&b, series[0], n, r->ny, lo, hi, "fill=\"#555\"");
    (void)tw_buf_puts(&b, "</svg>\n");
    tw_buf_reset(&path);
    /* trajectories.svg, then trajectories-1.svg, ... for more terms. */
    if (l == 0)
      (void)tw_buf_printf(&path, "%s/trajectories.svg", dir);
    else
      (void)tw_buf_printf(&path, "%s/trajectories-%zu.svg", dir, l);
    rc = tw_file_write_atomic(path.data, b.data, b.len, err);
  }
  /* report.md */
  if (rc == TW_OK) {
    tw_buf_reset(&b);
    (void)tw_buf_printf(
        &b,
        "# Calibration of twin %s\n\n"
        "Twin `%s`, recording `%s` (%lld ticks of %g s).\n"
        "Optimiser %s: %llu iterations, %llu loss+gradient evaluations, "
        "%.2f s, stopped by %s.\n\n"
        "| parameter | initial | fitted | true | error |\n"
        "|---|---:|---:|---:|---:|\n",
        twin, twin_path, data, (long long)r->ticks, r->dt, r->method,
        (unsigned long long)r->opt.iterations,
        (unsigned long long)r->opt.evaluations, r->opt.elapsed_s,
        tw_optim_stop_name(r->opt.reason));
    for (size_t i = 0; i < r->nparams; i++) {
      const tw_calib_param *p = &r->params[i];
      if (p->size == 1 && p->has_truth)
        (void)tw_buf_printf(&b, "| %s | %.6g | %.6g | %.6g | %+.2f%% |\n",
                            p->name, p->initial[0], p->fitted[0], p->truth,
                            100 * (p->fitted[0] - p->truth) / p->truth);
      else if (p->size == 1)
        (void)tw_buf_printf(&b, "| %s | %.6g | %.6g | | |\n", p->name,
                            p->initial[0], p->fitted[0]);
      else {
        double n0 = 0, n1 = 0;
        for (size_t e = 0; e < p->size; e++) {
          n0 += p->initial[e] * p->initial[e];
          n1 += p->fitted[e] * p->fitted[e];
        }
        (void)tw_buf_printf(&b, "| %s (%zu values, norm) | %.4g | %.4g | | |\n",
                            p->name, p->size, sqrt(n0), sqrt(n1));
      }
    }
    (void)tw_buf_printf(&b,
                        "\n| loss | start | fitted |\n|---|---:|---:|\n"
                        "| training (%lld ticks) | %.6g | %.6g |\n",
                        (long long)r->ticks, r->loss_initial, r->loss);
    if (r->has_validation)
      (void)tw_buf_printf(&b, "| validation (%lld ticks) | %.6g | %.6g |\n",
                          (long long)r->val_ticks, r->val_initial, r->val_loss);
    (void)tw_buf_puts(&b, "\n![loss](loss.svg)\n\n![trajectories]"
                          "(trajectories.svg)\n");
    tw_buf_reset(&path);
    (void)tw_buf_printf(&path, "%s/report.md", dir);
    rc = b.data != NULL && path.data != NULL
             ? tw_file_write_atomic(path.data, b.data, b.len, err)
             : tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  tw_buf_fini(&b);
  tw_buf_fini(&path);
  return rc;
}

/* --- The table ----------------------------------------------------------- */

static void table(FILE *f, const tw_calib_result *r) {
  (void)fprintf(f, "%-22s %12s %12s %12s %9s\n", "parameter", "initial",
                "fitted", "true", "error");
  for (size_t i = 0; i < r->nparams; i++) {
    const tw_calib_param *p = &r->params[i];
    if (p->size == 1 && p->has_truth)
      (void)fprintf(f, "%-22s %12.6g %12.6g %12.6g %+8.2f%%\n", p->name,
                    p->initial[0], p->fitted[0], p->truth,
                    100 * (p->fitted[0] - p->truth) / p->truth);
    else if (p->size == 1)
      (void)fprintf(f, "%-22s %12.6g %12.6g\n", p->name, p->initial[0],
                    p->fitted[0]);
    else {
      double n0 = 0, n1 = 0;
      for (size_t e = 0; e < p->size; e++) {
        n0 += p->initial[e] * p->initial[e];
        n1 += p->fitted[e] * p->fitted[e];
      }
      char name[64];
      (void)snprintf(name, sizeof name, "%s [%zu]", p->name, p->size);
      (void)fprintf(f, "%-22s %12.4g %12.4g %12s %9s\n", name, sqrt(n0),
                    sqrt(n1), "(norm)", "");
    }
  }
  (void)fprintf(f, "loss (training, %lld ticks): %.6g -> %.6g\n",
                (long long)r->ticks, r->loss_initial, r->loss);
  if (r->has_validation)
    (void)fprintf(f, "loss (validation, held out, %lld ticks): %.6g -> %.6g\n",
                  (long long)r->val_ticks, r->val_initial, r->val_loss);
  (void)fprintf(f,
                "optimizer %s: %llu iterations, %llu loss+gradient "
                "evaluations, %.2f s, stopped by %s\n",
                r->method, (unsigned long long)r->opt.iterations,
                (unsigned long long)r->opt.evaluations, r->opt.elapsed_s,
                tw_optim_stop_name(r->opt.reason));
}

static void json_summary(cli_ctx *cli, const tw_calib_result *r, int rc) {
  tw_buf b = TW_BUF_INIT;
  (void)tw_buf_printf(
      &b,
      "{\"result\":\"%s\",\"optimizer\":\"%s\",\"iterations\":%llu,"
      "\"evaluations\":%llu,\"seconds\":%.3f,\"stop\":\"%s\","
      "\"ticks\":%lld,\"loss_initial\":%.17g,\"loss\":%.17g",
      rc == TW_OK ? "ok" : "failed", r->method != NULL ? r->method : "",
      (unsigned long long)r->opt.iterations,
      (unsigned long long)r->opt.evaluations, r->opt.elapsed_s,
      tw_optim_stop_name(r->opt.reason), (long long)r->ticks, r->loss_initial,
      r->loss);
  if (r->has_validation)
    (void)tw_buf_printf(&b,
                        ",\"validation\":{\"ticks\":%lld,\"loss_initial\":"
                        "%.17g,\"loss\":%.17g}",
                        (long long)r->val_ticks, r->val_initial, r->val_loss);
  (void)tw_buf_puts(&b, ",\"parameters\":[");
  for (size_t i = 0; i < r->nparams; i++) {
    const tw_calib_param *p = &r->params[i];
    (void)tw_buf_printf(&b, "%s{\"name\":", i ? "," : "");
    (void)tw_buf_put_json_string(&b, p->name, strlen(p->name));
    (void)tw_buf_puts(&b, ",\"initial\":[");
    for (size_t e = 0; e < p->size; e++)
      (void)tw_buf_printf(&b, "%s%.17g", e ? "," : "", p->initial[e]);
    (void)tw_buf_puts(&b, "],\"fitted\":[");
    for (size_t e = 0; e < p->size; e++)
      (void)tw_buf_printf(&b, "%s%.17g", e ? "," : "", p->fitted[e]);
    (void)tw_buf_puts(&b, "]");
    if (p->has_truth)
      (void)tw_buf_printf(&b, ",\"true\":%.17g", p->truth);
    (void)tw_buf_puts(&b, "}");
  }
  (void)tw_buf_puts(&b, "]}\n");
  (void)cli_write_out(cli, &b);
  tw_buf_fini(&b);
}

static int run(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *cmd = cli->cmd;
  tw_calib_opts o = {0};
  o.data = cli_opt_value(cmd, args, "data");
  o.validation = cli_opt_value(cmd, args, "validation");
  o.optimizer = cli_opt_value(cmd, args, "optimizer");
  o.schedule = cli_opt_value(cmd, args, "schedule");
  const char *out = cli_opt_value(cmd, args, "out");
  const char *report = cli_opt_value(cmd, args, "report");
  const char *v = cli_opt_value(cmd, args, "iters");
  unsigned long iters = 0;
  if (v != NULL &&
      (cli_parse_uint(cli, "iters", v, 100000000ul, &iters) != 0 || iters == 0))
    return iters == 0 && v != NULL
               ? cli_usage_error(cli, cmd, "--iters needs at least 1")
               : CLI_EXIT_USAGE;
  o.iterations = iters;
  const char *lr = cli_opt_value(cmd, args, "learning-rate");
  if (lr != NULL) {
    char *end = NULL;
    errno = 0;
    o.learning_rate = strtod(lr, &end);
    if (errno != 0 || end == lr || *end != '\0' || !(o.learning_rate > 0) ||
        !isfinite(o.learning_rate))
      return cli_usage_error(
          cli, cmd, "--learning-rate needs a number > 0, not '%s'", lr);
  }
  if (o.optimizer != NULL && strcmp(o.optimizer, "lbfgs") != 0 &&
      strcmp(o.optimizer, "adam") != 0 && strcmp(o.optimizer, "gd") != 0)
    return cli_usage_error(
        cli, cmd, "--optimizer is lbfgs, adam or gd, not '%s'", o.optimizer);
  tw_compose *c = NULL;
  int code = cli_compose_load(cli, args, args->pos[0], &c);
  if (code != CLI_EXIT_OK)
    return code;
  const tw_compose_calibration *cal = tw_compose_calibration_get(c);
  progress pr = {cli, cli->json, !cli->json && isatty(fileno(cli->errs)),
                 iters ? iters
                 : cal != NULL && cal->iterations > 0
                     ? (uint64_t)cal->iterations
                     : 0,
                 -1};
  if (pr.max_iters == 0)
    pr.max_iters = 1000;
  o.progress = on_progress;
  o.progress_ud = &pr;
  tw_err err;
  tw_err_init(&err);
  tw_calib_result r;
  int rc = tw_calibrate(c, &o, &r, &err);
  if (pr.tty)
    (void)fputc('\n', cli->errs);
  /* A diverged run keeps the best parameters so far: they are written. */
  bool have = r.nparams > 0 && (rc == TW_OK || rc == TW_ENUMERIC) &&
              r.opt.evaluations > 0;
  tw_err werr;
  tw_err_init(&werr);
  int wrc = TW_OK;
  const char *data = o.data != NULL ? o.data : cal != NULL ? cal->data : "";
  if (have && out != NULL)
    wrc = write_overlay(out, tw_compose_name(c), &r, &werr);
  if (have && wrc == TW_OK && report != NULL)
    wrc = write_report(report, tw_compose_name(c), args->pos[0], data, &r, c,
                       &werr);
  if (have) {
    if (cli->json)
      json_summary(cli, &r, rc);
    else
      table(cli->out, &r);
  }
  tw_calib_result_free(&r);
  tw_compose_free(c);
  if (rc != TW_OK) {
    if (rc == TW_ENUMERIC && have)
      (void)fprintf(cli->errs,
                    "calibrate: the run diverged; the best parameters so far "
                    "are above%s\n",
                    out != NULL ? " and in --out" : "");
    return cli_fail(cli, &err);
  }
  return wrc == TW_OK ? CLI_EXIT_OK : cli_fail(cli, &werr);
}

static const cli_opt opts[] = {
    {"data", 0, "REC.mcap", "the recording to fit (default: calibrate.data)"},
    {"validation", 0, "REC.mcap",
     "a held-out recording (default: calibrate.validation)"},
    {"optimizer", 0, "NAME", "lbfgs, adam or gd (default: the twin's)"},
    {"iters", 0, "N", "iterations at most (default: the twin's)"},
    {"learning-rate", 0, "LR", "adam, gd: the step (default: the twin's)"},
    {"schedule", 0, "SCHED",
     "checkpoints of the gradient: all, periodic:C, revolve:K"},
    {"out", 'o', "FILE.yaml", "write the fitted parameters (a -p file)"},
    {"report", 0, "DIR", "write report.md, loss.svg, trajectories.svg"},
    {"profile", 0, "NAME", "the twin's profile"},
    {"params", 'p', "FILE", "parameter file laid over the twin (repeats)"},
    {"store", 0, "DIR", "model store of oci://...@sha256: models"},
    {"fuel", 0, "N", "fuel per call of each wasm model"},
    {"timeout-ms", 0, "N", "deadline per call of each wasm model"},
    {"json", 0, NULL, "JSON lines: one per iteration, then the result"},
    {NULL, 0, NULL, NULL}};

const cli_cmd cmd_calibrate = {
    NULL,
    "calibrate",
    "TWIN.yaml",
    1,
    1,
    "fit a twin's parameters to a recording",
    "Fits the parameters the twin's calibrate: section names (with their\n"
    "bounds) to a recording by exact gradients through the whole run: the\n"
    "twin's mcap sources feed its inputs from the recording, and the loss\n"
    "is the weighted mean squared error between twin outputs and recorded\n"
    "channels (docs/twin-compose.md, Calibration). Shows the iteration,\n"
    "loss, gradient norm and ETA on a terminal (JSON lines with --json),\n"
    "then the table of parameters (initial, fitted, true when known) and\n"
    "the training and validation losses. --out writes the fitted values as\n"
    "a parameter file for -p; --report writes a report with the loss curve\n"
    "and measured vs fitted trajectories. A run that diverges stops, keeps\n"
    "the best parameters so far (written with --out) and exits 1.\n",
    opts,
    run};
