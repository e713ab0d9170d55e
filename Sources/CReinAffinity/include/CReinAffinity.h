#ifndef CREIN_AFFINITY_H
#define CREIN_AFFINITY_H

/// Restricts thread `tid` (0: the calling thread) to the `count` CPUs in `cpus`.
/// Returns 0, or -1 with errno set (ESRCH: the thread has ended).
int rein_set_affinity(int tid, const int *cpus, int count);

/// Writes up to `capacity` CPUs the calling thread may run on into `cpus`, ascending.
/// Returns how many, or -1 with errno set.
int rein_get_affinity(int *cpus, int capacity);

#endif
