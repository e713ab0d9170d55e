#ifndef REIN_CZEROMQ_SHIM_H
#define REIN_CZEROMQ_SHIM_H
#include <zmq.h>
#endif
