/*
 * twin.h - umbrella header: the whole public C API of libtwin.
 */
#ifndef TWIN_TWIN_H
#define TWIN_TWIN_H

#include "twin/ad.h"
#include "twin/align.h"
#include "twin/alloc.h"
#include "twin/arena.h"
#include "twin/buf.h"
#include "twin/checkpoint.h"
#include "twin/clock.h"
#include "twin/common.h"
#include "twin/compose.h"
#include "twin/ctx.h"
#include "twin/dtype.h"
#include "twin/error.h"
#include "twin/file.h"
#include "twin/graph.h"
#include "twin/hash.h"
#include "twin/ingest.h"
#include "twin/json.h"
#include "twin/kafka.h"
#include "twin/log.h"
#include "twin/meta.h"
#include "twin/metrics.h"
#include "twin/mqtt.h"
#include "twin/optim.h"
#include "twin/pool.h"
#include "twin/registry.h"
#include "twin/rtsp.h"
#include "twin/schema_registry.h"
#include "twin/server.h"
#include "twin/sim.h"
#include "twin/store.h"
#include "twin/stream.h"
#include "twin/trace.h"
#include "twin/units.h"
#include "twin/version.h"
#include "twin/wasm.h"
#include "twin/yaml.h"

#endif /* TWIN_TWIN_H */
