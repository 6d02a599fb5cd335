/*
 * strings.h for MSVC, which has the functions under other names. Only put
 * on the include path of MSVC builds (gpuhost/CMakeLists.txt).
 */
#ifndef TOKENPLACE_MSVC_STRINGS_H
#define TOKENPLACE_MSVC_STRINGS_H
#include <string.h>
#define strcasecmp _stricmp
#define strncasecmp _strnicmp
#endif
