/*
 * A stand-in python311.dll for the wine smoke tests (the Windows CPython
 * runtime cannot be had here). It exports the Stable ABI functions
 * tokenplace-gpuhost binds and behaves like a tiny server.py: Py_Main
 * prints its argv, serves GET /health on --host/--port with plain
 * Winsock until PyErr_SetInterrupt() is called, then returns
 * STATUS_CONTROL_C_EXIT as CPython does after an unhandled
 * KeyboardInterrupt. Py_AddPendingCall runs the callback from Py_Main's
 * loop, like the interpreter's main thread would. With --help it prints
 * argparse's help for token.place's server.py options and returns 0, and
 * it takes --server_host/--server_port as well as --host/--port. With
 * -c CODE (gpuhost's runtime probe) it answers as the probe would.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -o python311.dll fakepython.c -lws2_32
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define EXPORT __declspec(dllexport)

static volatile LONG interrupted;
static volatile LONG initialized;
static int (*pending_fn)(void *);
static void *pending_arg;
static int exc_raised;

struct fake_object { int dummy; };
static struct fake_object system_exit_object;
EXPORT struct fake_object *PyExc_SystemExit = &system_exit_object;

EXPORT const char *Py_GetVersion(void);
EXPORT int Py_IsInitialized(void);
EXPORT void PyErr_SetInterrupt(void);
EXPORT int Py_AddPendingCall(int (*fn)(void *), void *arg);
EXPORT void PyErr_SetNone(struct fake_object *o);
EXPORT int Py_Main(int argc, wchar_t **argv);

const char *
Py_GetVersion(void)
{
	return "3.11.0 (stand-in for the wine tests) [fakepython]";
}

int
Py_IsInitialized(void)
{
	return (int)initialized;
}

void
PyErr_SetInterrupt(void)
{
	InterlockedExchange(&interrupted, 1);
}

int
Py_AddPendingCall(int (*fn)(void *), void *arg)
{
	pending_arg = arg;
	pending_fn = fn;
	return 0;
}

void
PyErr_SetNone(struct fake_object *o)
{
	exc_raised = o == &system_exit_object ? 1 : 2;
}

/* What argparse prints for token.place's server.py. */
static const wchar_t help_text[] =
    L"usage: server.py [-h] [--server_host SERVER_HOST] [--server_port SERVER_PORT]\n"
    L"                 [--relay_url RELAY_URL] [--relay_port RELAY_PORT]\n"
    L"                 [--use_mock_llm]\n"
    L"\n"
    L"options:\n"
    L"  -h, --help            show this help message and exit\n"
    L"  --server_host SERVER_HOST\n"
    L"  --server_port SERVER_PORT\n"
    L"  --relay_url RELAY_URL\n"
    L"  --relay_port RELAY_PORT\n"
    L"  --use_mock_llm\n";

static void
serve_one(SOCKET c)
{
	char buf[2048];
	int n = recv(c, buf, sizeof(buf) - 1, 0);
	const char *ok = "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}";
	const char *nf = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n";

	if (n > 0) {
		buf[n] = '\0';
		const char *r = strncmp(buf, "GET /health ", 12) == 0 ? ok : nf;
		send(c, r, (int)strlen(r), 0);
	}
	closesocket(c);
}

/*
 * gpuhost's runtime probe (python -c CODE): answers as the probe would
 * for a venv whose llama_cpp is FAKE_LLAMA_CPP (unset: absent; "cuda":
 * offload supported; "cpu": not), after checking that the code that came
 * through Py_Main's wide argv is the probe.
 */
static int
probe(const wchar_t *code)
{
	char mode[32];

	if (wcsstr(code, L"llama_supports_gpu_offload") == NULL) {
		wprintf(L"fakepython: -c is not gpuhost's probe\n");
		return 1;
	}
	if (GetEnvironmentVariableA("FAKE_LLAMA_CPP", mode, sizeof(mode)) == 0)
		strcpy(mode, "absent");
	if (strcmp(mode, "absent") == 0)
		wprintf(L"GPUHOST_PROBE llama_cpp=absent\n");
	else {
		wprintf(L"GPUHOST_PROBE llama_cpp=present\n"
		    L"GPUHOST_PROBE version=0.3.16-wine\n"
		    L"GPUHOST_PROBE module=C:\\fake\\llama_cpp\\__init__.py\n"
		    L"GPUHOST_PROBE gpu_offload=%hs\n",
		    strcmp(mode, "cuda") == 0 ? "true" : "false");
	}
	wprintf(L"GPUHOST_PROBE model_error=ModuleNotFoundError: No module "
	    L"named 'utils'\nGPUHOST_PROBE end=\n");
	fflush(stdout);
	return 0;
}

int
Py_Main(int argc, wchar_t **argv)
{
	char host[64] = "127.0.0.1", env[128];
	int stubborn = 0;
	int port = 0;
	WSADATA wsa;
	SOCKET s;
	struct sockaddr_in sin;

	for (int i = 0; i < argc; i++) {
		if (wcscmp(argv[i], L"--help") == 0) {
			wprintf(L"%ls", help_text);
			fflush(stdout);
			return 0;
		}
		if (wcscmp(argv[i], L"-c") == 0 && i + 1 < argc)
			return probe(argv[i + 1]);
	}
	for (int i = 0; i < argc; i++) {
		wprintf(L"fakepython: argv[%d]=%ls\n", i, argv[i]);
		if ((wcscmp(argv[i], L"--port") == 0 ||
		    wcscmp(argv[i], L"--server_port") == 0) && i + 1 < argc)
			port = _wtoi(argv[i + 1]);
		if ((wcscmp(argv[i], L"--host") == 0 ||
		    wcscmp(argv[i], L"--server_host") == 0) && i + 1 < argc)
			WideCharToMultiByte(CP_UTF8, 0, argv[i + 1], -1, host,
			    sizeof(host), NULL, NULL);
	}
	/* The process environment block, as the real UCRT reads it. */
	if (GetEnvironmentVariableA("GPUHOST_FIXTURE_ENV", env, sizeof(env)) == 0)
		strcpy(env, "(unset)");
	wprintf(L"fakepython: env GPUHOST_FIXTURE_ENV=%hs\n", env);
	if (GetEnvironmentVariableA("TOKEN_PLACE_ENV", env, sizeof(env)) == 0)
		strcpy(env, "(unset)");
	wprintf(L"fakepython: env TOKEN_PLACE_ENV=%hs\n", env);
	/* A script that swallows KeyboardInterrupt and SystemExit. */
	if (GetEnvironmentVariableA("GPUHOST_FIXTURE_MODE", env, sizeof(env)) > 0 &&
	    strcmp(env, "ignore-interrupt") == 0)
		stubborn = 1;
	fflush(stdout);
	if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
		return 1;
	s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((u_short)port);
	inet_pton(AF_INET, host, &sin.sin_addr);
	if (s == INVALID_SOCKET || bind(s, (struct sockaddr *)&sin,
	    sizeof(sin)) != 0 || listen(s, 8) != 0) {
		fprintf(stderr, "fakepython: cannot listen on %s:%d (%d)\n", host,
		    port, WSAGetLastError());
		return 1;
	}
	wprintf(L"fakepython: listening on %hs:%d\n", host, port);
	fflush(stdout);
	InterlockedExchange(&initialized, 1);
	for (;;) {
		if (interrupted) {
			if (!stubborn)
				break;
			fprintf(stderr, "fakepython: ignoring KeyboardInterrupt\n");
			fflush(stderr);
			InterlockedExchange(&interrupted, 0);
		}
		fd_set r;
		struct timeval tv = { 0, 50000 };

		if (pending_fn != NULL) {
			int (*fn)(void *) = pending_fn;

			pending_fn = NULL;
			if (fn(pending_arg) != 0 && exc_raised == 1 && stubborn) {
				fprintf(stderr, "fakepython: ignoring SystemExit\n");
				fflush(stderr);
			} else if (exc_raised == 1) {
				fprintf(stderr, "fakepython: SystemExit\n");
				closesocket(s);
				return 0;
			}
		}
		FD_ZERO(&r);
		FD_SET(s, &r);
		if (select(0, &r, NULL, NULL, &tv) > 0)
			serve_one(accept(s, NULL, NULL));
	}
	fprintf(stderr, "fakepython: KeyboardInterrupt\n");
	fflush(stderr);
	closesocket(s);
	return (int)0xC000013A;
}
