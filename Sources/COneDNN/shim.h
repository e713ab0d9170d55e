#ifndef REIN_CONEDNN_SHIM_H
#define REIN_CONEDNN_SHIM_H
// oneDNN's C API: dnnl_sgemm, dnnl_get_effective_cpu_isa, dnnl_version. Debian's libdnnl-dev
// installs /usr/include/dnnl.h and no pkg-config file, so the module map links "dnnl" by name.
#include <dnnl.h>
#endif
