/*
 * chdb-server: runs the ClickHouse engine shipped as libchdb.so (the chdb
 * npm package) as a local server for tests and `make run`.
 *
 *   chdb-server /path/to/libchdb.so --path=DIR --listen_host=127.0.0.1 \
 *       --tcp_port=P --http_port=Q --multiquery --query "SYSTEM START LISTEN TCP; ..."
 *
 * It dlopen()s the library and hands the remaining arguments to
 * chdb_query_cmdline(), which runs clickhouse-local with them. The query
 * starts the TCP and HTTP listeners and then sleeps; the process lives as
 * long as that query runs. deployments/dev/clickhouse.sh builds and drives
 * it. It is a development tool: no config file, no users, loopback only.
 */
#include <dlfcn.h>
#include <stdio.h>

typedef void *(*query_cmdline_fn)(int, char **);
typedef const char *(*result_error_fn)(void *);

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: %s LIBCHDB_SO CLICKHOUSE_LOCAL_ARGS...\n", argv[0]);
		return 2;
	}
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	if (!lib) {
		fprintf(stderr, "chdb-server: %s\n", dlerror());
		return 1;
	}
	query_cmdline_fn query = (query_cmdline_fn)dlsym(lib, "chdb_query_cmdline");
	result_error_fn result_error = (result_error_fn)dlsym(lib, "chdb_result_error");
	if (!query) {
		fprintf(stderr, "chdb-server: %s has no chdb_query_cmdline: %s\n", argv[1], dlerror());
		return 1;
	}
	argv[1] = "clickhouse"; /* argv[0] of clickhouse-local */
	void *res = query(argc - 1, argv + 1);
	const char *err = (res && result_error) ? result_error(res) : NULL;
	if (err && *err) {
		fprintf(stderr, "chdb-server: %s\n", err);
		return 1;
	}
	return 0;
}
