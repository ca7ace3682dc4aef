/* spe_strerror and spe_err_name, generated from SPE_ERRNO_MAP in spe.h. */
#include "spe.h"

SPE_EXPORT const char *spe_strerror(int code) {
  switch (code) {
    case 0: return "success";
#define SPE_STRERROR_CASE(name, value, text) case SPE_##name: return text;
    SPE_ERRNO_MAP(SPE_STRERROR_CASE)
#undef SPE_STRERROR_CASE
    default: return "unknown error";
  }
}

SPE_EXPORT const char *spe_err_name(int code) {
  switch (code) {
    case 0: return "0";
#define SPE_ERRNAME_CASE(name, value, text) case SPE_##name: return "SPE_" #name;
    SPE_ERRNO_MAP(SPE_ERRNAME_CASE)
#undef SPE_ERRNAME_CASE
    default: return "SPE_EUNKNOWN";
  }
}
