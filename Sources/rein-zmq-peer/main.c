// rein-zmq-peer: raw libzmq PUSH/PULL throughput peer for `rein bench transport`.
//
// This is the C ceiling the Swift binding is measured against, built from the project's own source
// by SwiftPM next to the `rein` executable. It speaks the same protocol as the Swift side of the
// benchmark: the PULL side binds, the PUSH side connects; the PULL side times messages 2…N
// (the first one absorbs connection setup) and prints one line of JSON on stdout.
//
// usage: rein-zmq-peer pull ENDPOINT BYTES COUNT   (binds, prints the bound endpoint on stderr
//                                                    as "bound ENDPOINT", then the result on stdout)
//        rein-zmq-peer push ENDPOINT BYTES COUNT   (connects, sends COUNT messages, then waits for
//                                                    stdin to close before it closes the socket)
//
// The pusher stays open until the benchmark has seen the puller finish: a PUSH socket closed right
// after its last send can lose the tail of its queue despite an infinite linger (libzmq #3774,
// #4660; seen here over ipc, a few runs in a hundred), which left the puller waiting forever.
#include <zmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int fail(const char *what) {
    fprintf(stderr, "rein-zmq-peer: %s: %s\n", what, zmq_strerror(zmq_errno()));
    return 1;
}

static int run_pull(const char *endpoint, size_t bytes, long count) {
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    if (zmq_bind(pull, endpoint) != 0) return fail("bind");
    char bound[256];
    size_t bound_len = sizeof bound;
    if (zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, bound, &bound_len) != 0) return fail("getsockopt");
    fprintf(stderr, "bound %s\n", bound);
    fflush(stderr);

    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, pull, 0) < 0) return fail("recv");
    double t0 = now_s();
    for (long i = 1; i < count; i++) {
        if (zmq_msg_recv(&msg, pull, 0) < 0) return fail("recv");
        if (zmq_msg_size(&msg) != bytes) {
            fprintf(stderr, "rein-zmq-peer: got %zu bytes, expected %zu\n", zmq_msg_size(&msg), bytes);
            return 1;
        }
    }
    double dt = now_s() - t0;
    zmq_msg_close(&msg);
    printf("{\"msgs\":%ld,\"seconds\":%.9f,\"msgs_per_s\":%.1f}\n", count - 1, dt, (double)(count - 1) / dt);
    fflush(stdout);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    return 0;
}

static int run_push(const char *endpoint, size_t bytes, long count) {
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    if (zmq_connect(push, endpoint) != 0) return fail("connect");
    char *buf = calloc(1, bytes ? bytes : 1);
    for (long i = 0; i < count; i++) {
        if (zmq_send(push, buf, bytes, 0) < 0) return fail("send");
    }
    free(buf);
    char drain[256];
    while (fread(drain, 1, sizeof drain, stdin) > 0) {}  // until the benchmark closes stdin
    zmq_close(push);
    zmq_ctx_term(ctx);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: rein-zmq-peer pull|push ENDPOINT BYTES COUNT\n");
        return 2;
    }
    size_t bytes = (size_t)strtoull(argv[3], NULL, 10);
    long count = strtol(argv[4], NULL, 10);
    if (count < 2) {
        fprintf(stderr, "rein-zmq-peer: COUNT must be at least 2\n");
        return 2;
    }
    if (strcmp(argv[1], "pull") == 0) return run_pull(argv[2], bytes, count);
    if (strcmp(argv[1], "push") == 0) return run_push(argv[2], bytes, count);
    fprintf(stderr, "rein-zmq-peer: unknown mode '%s'\n", argv[1]);
    return 2;
}
