/*
 * compose_int.h - what the parts of twin-compose share: the loaded
 * documents (the twin file and the parameter files laid over it) with
 * their positions, the diagnostics, and the compiler's state.
 *
 * Invariants: every json_t value the compiler looks at belongs to one of
 * the loaded documents (profiles and overlays are merged by reference, so
 * a value keeps its place in the file it came from); diagnostics are
 * appended in the order problems are found, and a twin with an error
 * never gets a graph.
 */
#ifndef TW_COMPOSE_INT_H
#define TW_COMPOSE_INT_H

#include "twin/compose.h"
#include "twin/json.h"
#include "twin/units.h"

#define TW__COMPOSE_MAX_FILES 17 /* the twin and up to 16 overlays */

typedef struct tw__cdoc {
  tw_json_doc *doc;
  char *path; /* as named (for messages) */
  char *text; /* its bytes, for offsets of lines and columns */
  size_t len;
} tw__cdoc;

/* A component's model, resolved. */
typedef struct tw__ccomp {
  const char *name;
  json_t *spec;  /* its mapping in the twin */
  json_t *model; /* the model string value */
  size_t block;  /* index in the graph of blocks (SIZE_MAX: failed) */
  const tw_block_desc *desc;
  bool *fed; /* per input: a connection feeds it */
  json_t **fed_by;
  bool used;   /* some connection touches it */
  tw_graph *g; /* the component alone (pass 1), owner of desc */
} tw__ccomp;

/* An IR value and the twin value it was made from (its place). */
typedef struct tw__cpair {
  json_t *ir, *y;
} tw__cpair;

/* A source's topic that the twin reads: a graph input. */
typedef struct tw__ctopic {
  char *input; /* graph input name: SOURCE.TOPIC_WITHOUT_SLASHES */
  char *topic; /* as recorded, "/force" */
  char *unit;
  size_t size;
  tw_dtype dtype;
  bool known; /* size and unit known (declared or recorded) */
} tw__ctopic;

typedef struct tw__csource {
  const char *name;
  json_t *spec;
  tw_compose_source pub;
  char *path;
  tw__ctopic *topics;
  size_t ntopics, cap;
  char **map; /* "INPUT=TOPIC" */
} tw__csource;

struct tw_compose {
  char *name;
  char *dir; /* the twin file's directory */
  tw__cdoc files[TW__COMPOSE_MAX_FILES];
  size_t nfiles;
  json_t *root;      /* the twin, profile and overlays merged (owned) */
  json_t *graveyard; /* values merging replaced, kept until the end */
  double dt;
  tw__ccomp *comps;
  size_t ncomps;
  tw__csource *sources;
  size_t nsources;
  json_t *ir; /* the compiled graph IR (owned by ir_doc) */
  tw_json_doc *ir_doc;
  tw_graph *graph;
  tw_compose_opts opts;
  tw_compose_diags *diags;
  tw_compose_diags own_diags;
  tw_err *err;      /* fatal errors (memory) */
  unsigned nconv;   /* conversion blocks made */
  tw__cpair *pairs; /* every mark of the IR, for the pass-1 documents */
  size_t npairs, cappairs;
  /* The calibrate: section (calibrate.c), when the twin has one. */
  bool has_calib;
  tw_compose_calibration calib;
  tw_compose_calib_param *cparams;
  char **cnames; /* the names cparams point to (owned) */
  tw_compose_calib_loss *closs;
  char *cdata, *cvalidation;
};

/* Diagnostics (compose.c). v locates the problem in whichever file it
 * came from; key, when not NULL, points at that key of the mapping v
 * instead of at v. */
void tw__cdiag(tw_compose *c, bool warning, const char *code, json_t *v,
               const char *key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The same at a character offset inside the string value v. */
void tw__cdiag_at(tw_compose *c, const char *code, json_t *v, size_t offset,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* ", did you mean 'x'?" for the closest of names (n of them, NULL-
 * terminated when n is SIZE_MAX), or "" when none is close. */
const char *tw__did_you_mean(const char *word, const char *const *names,
                             size_t n, char *buf, size_t cap);
/* Checks the keys of mapping v against allowed (NULL-terminated; x-
 * keys are extensions): an "unknown-key" error for each other one. */
void tw__ckeys(tw_compose *c, json_t *v, const char *what,
               const char *const *allowed);
/* The directory of the file v comes from (the twin's, an overlay's): what
 * relative paths in it are relative to. */
int tw__cdir_of(const tw_compose *c, json_t *v, tw_buf *out);
/* The byte offset of v in the twin file's text (for the IR's marks). */
bool tw__coffset(const tw_compose *c, json_t *v, size_t *offset);

/* Reads path (YAML or JSON) into c->files; a file that cannot be read or
 * parsed is one diagnostic and TW_EPARSE. */
int tw__compose_load_file(tw_compose *c, const char *path, tw__cdoc **out);
/* The same for bytes already read (text is taken; rc, e: how reading
 * went). */
int tw__compose_add_text(tw_compose *c, const char *path, tw_buf *text, int rc,
                         tw_err *e, tw__cdoc **out);
/* A diagnostic placed in the twin file. */
void tw__compose_add(tw_compose *c, unsigned line, unsigned col,
                     const char *code, const char *msg);

/* The compiler (compile.c): the twin's root into c->ir and c->graph. */
int tw__compose_compile(tw_compose *c);
/* A number or a quantity string v in the unit want ("" or NULL:
 * dimensionless), into *out; a diagnostic naming what otherwise. */
bool tw__cquantity(tw_compose *c, json_t *v, const char *want, const char *what,
                   double *out);
/* The calibrate: section against the compiled graph (c->graph may be NULL
 * after errors: then only its shape is checked). */
int tw__compose_calibrate(tw_compose *c);
void tw__compose_calibrate_free(tw_compose *c);

#endif
