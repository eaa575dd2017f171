/*
 * describe.c - the JSON descriptor of model ABI v1, generated from the
 * model's port tables on first use (docs/model-abi.md, "Descriptor").
 *
 * Output is compact JSON with keys in a fixed order, numbers in their
 * shortest form that reads back as the same double (so defaults and
 * bounds reach the host exactly), strings escaped. A value JSON cannot
 * hold (NaN, Inf) makes the model invalid rather than being written as
 * something else.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_int.h"
#include "twin/alloc.h"

typedef struct jbuf {
  char *data;
  size_t len, cap;
  int rc; /* first failure */
} jbuf;

static void put(jbuf *b, const char *s, size_t n) {
  if (b->rc != TW_OK)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = tw_realloc(b->data, cap);
    if (p == NULL) {
      b->rc = TW_ENOMEM;
      return;
    }
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void puts_(jbuf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string literal of s[0..n); names and units are the author's
 * UTF-8. */
static void put_strn(jbuf *b, const char *s, size_t n) {
  put(b, "\"", 1);
  for (const char *end = s + n; s < end; s++) {
    unsigned char ch = (unsigned char)*s;
    char esc[8];
    if (ch == '"' || ch == '\\') {
      esc[0] = '\\';
      esc[1] = (char)ch;
      put(b, esc, 2);
    } else if (ch < 0x20) {
      (void)snprintf(esc, sizeof esc, "\\u%04x", ch);
      put(b, esc, 6);
    } else {
      put(b, s, 1);
    }
  }
  put(b, "\"", 1);
}

static void put_str(jbuf *b, const char *s) { put_strn(b, s, strlen(s)); }

static void put_num(jbuf *b, const char *what, double v) {
  if (!isfinite(v)) {
    if (b->rc == TW_OK)
      b->rc = tw_model_fail(TW_EINVAL, "model: %s is not finite", what);
    return;
  }
  char s[32];
  for (int prec = 15; prec <= 17; prec++) {
    (void)snprintf(s, sizeof s, "%.*g", prec, v);
    if (strtod(s, NULL) == v)
      break;
  }
  puts_(b, s);
}

static void put_size(jbuf *b, size_t n) {
  char s[24];
  (void)snprintf(s, sizeof s, "%zu", n);
  puts_(b, s);
}

/* ,"key":v or ,"key":[v0,v1,...] (absent values write nothing). */
static void put_values(jbuf *b, const tw_model_port *p, const char *key,
                       const tw_model_values *v) {
  if (v->n == 0)
    return;
  char what[160];
  (void)snprintf(what, sizeof what, "the %s of '%s'", key, p->name);
  put(b, ",\"", 2);
  puts_(b, key);
  put(b, "\":", 2);
  if (v->n == 1) {
    put_num(b, what, v->v[0]);
    return;
  }
  put(b, "[", 1);
  for (size_t i = 0; i < v->n; i++) {
    if (i > 0)
      put(b, ",", 1);
    put_num(b, what, v->v[i]);
  }
  put(b, "]", 1);
}

/* ,"feedthrough":["a","b"] from "a b" / "a,b". */
static void put_feedthrough(jbuf *b, const char *list) {
  puts_(b, ",\"feedthrough\":[");
  bool first = true;
  for (const char *s = list; *s != '\0';) {
    size_t len = strcspn(s, " ,");
    if (len > 0) {
      if (!first)
        put(b, ",", 1);
      first = false;
      put_strn(b, s, len);
    }
    s += len;
    s += strspn(s, " ,");
  }
  put(b, "]", 1);
}

static void put_ports(jbuf *b, const tw__model_rt *rt, int kind) {
  put(b, ",\"", 2);
  puts_(b, tw__model_kind_name(kind));
  put(b, "\":[", 3);
  for (size_t i = 0; i < rt->nports[kind]; i++) {
    const tw_model_port *p = &rt->ports[kind][i];
    puts_(b, i > 0 ? ",{\"name\":" : "{\"name\":");
    put_str(b, p->name);
    puts_(b, ",\"unit\":");
    put_str(b, p->unit != NULL ? p->unit : "");
    puts_(b, ",\"size\":");
    put_size(b, p->size);
    if (kind == TW__MK_INPUT) {
      put_values(b, p, "default", &p->default_);
    } else if (kind == TW__MK_PARAM) {
      static const double zero = 0.0;
      const tw_model_values none = {&zero, 1};
      put_values(b, p, "default", p->default_.n ? &p->default_ : &none);
      put_values(b, p, "min", &p->min);
      put_values(b, p, "max", &p->max);
    } else if (kind == TW__MK_OUTPUT && p->feedthrough != NULL) {
      put_feedthrough(b, p->feedthrough);
    }
    if (p->dtype != TW_F64) {
      puts_(b, ",\"dtype\":");
      put_str(b, tw_dtype_name(p->dtype));
    }
    put(b, "}", 1);
  }
  put(b, "]", 1);
}

int tw__model_build_json(tw__model_rt *rt) {
  const tw_model_def *d = rt->def;
  jbuf b = {NULL, 0, 0, TW_OK};
  char abi[48];
  (void)snprintf(abi, sizeof abi,
                 "{\"abi\":%d,\"name\":", TW_MODEL_ABI_VERSION);
  puts_(&b, abi);
  put_str(&b, d->name);
  puts_(&b, ",\"version\":");
  put_str(&b, d->version != NULL ? d->version : "0");
  for (int k = 0; k < TW__MK_COUNT; k++)
    put_ports(&b, rt, k);
  bool diff = d->step_vjp != NULL || d->step_ad != NULL;
  puts_(&b, diff ? ",\"differentiable\":true}" : ",\"differentiable\":false}");
  if (b.rc != TW_OK) {
    tw_free(b.data);
    return b.rc == TW_ENOMEM ? tw_model_fail(TW_ENOMEM, "model: out of memory")
                             : b.rc;
  }
  rt->json = b.data;
  rt->json_len = b.len;
  return TW_OK;
}
