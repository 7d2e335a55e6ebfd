/* plugins/registry.c: the table of plugins compiled into this build (CMake options
 * PV_XCONNECT_<TYPE>); the core finds a link's plugin here by type and nowhere else. */
#include <stddef.h>

#include "plugins/plugin.h"

const struct pvx_plugin *const pvx_plugins[] = {
#ifdef PVX_HAVE_UNIX
    &pvx_unix,
#endif
#ifdef PVX_HAVE_REST
    &pvx_rest,
#endif
#ifdef PVX_HAVE_DBUS
    &pvx_dbus,
#endif
#ifdef PVX_HAVE_DRM
    &pvx_drm,
#endif
#ifdef PVX_HAVE_WAYLAND
    &pvx_wayland,
#endif
    NULL,
};
