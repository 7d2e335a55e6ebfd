/* pv-ctrl/router.c: route id → endpoint handler. The route rules themselves (paths, roles,
 * limits) are data in route.c; this file only binds them to code. */
#include "ctrl.h"

static const pv_ctrl_handler handlers[PV_R_COUNT] = {
    [PV_R_CONTAINERS_LIST] = pv_ep_containers_list,
    [PV_R_CONTAINERS_ACTION] = pv_ep_containers_action,
    [PV_R_GROUPS_LIST] = pv_ep_groups_list,
    [PV_R_SIGNAL] = pv_ep_signal,
    [PV_R_COMMANDS] = pv_ep_commands,
    [PV_R_OBJECTS_LIST] = pv_ep_objects_list,
    [PV_R_OBJECTS_GET] = pv_ep_objects_get,
    [PV_R_OBJECTS_PUT] = pv_ep_objects_put,
    [PV_R_STEPS_LIST] = pv_ep_steps_list,
    [PV_R_STEPS_GET] = pv_ep_steps_get,
    [PV_R_STEPS_LOCAL_GET] = pv_ep_steps_get,
    [PV_R_STEPS_LOCAL_PUT] = pv_ep_steps_put,
    [PV_R_STEPS_PROGRESS] = pv_ep_steps_progress,
    [PV_R_STEPS_LOCAL_PROGRESS] = pv_ep_steps_progress,
    [PV_R_STEPS_COMMITMSG] = pv_ep_steps_commitmsg,
    [PV_R_STEPS_LOCAL_COMMITMSG] = pv_ep_steps_commitmsg,
    [PV_R_USER_META_LIST] = pv_ep_meta_list,
    [PV_R_USER_META_PUT] = pv_ep_meta_put,
    [PV_R_USER_META_DELETE] = pv_ep_meta_delete,
    [PV_R_DEVICE_META_LIST] = pv_ep_meta_list,
    [PV_R_DEVICE_META_PUT] = pv_ep_meta_put,
    [PV_R_DEVICE_META_DELETE] = pv_ep_meta_delete,
    [PV_R_BUILDINFO] = pv_ep_buildinfo,
    [PV_R_CONFIG] = pv_ep_config,
    [PV_R_CONFIG2] = pv_ep_config2,
    [PV_R_DAEMONS_LIST] = pv_ep_daemons_list,
    [PV_R_DAEMONS_ACTION] = pv_ep_daemons_action,
    [PV_R_GRAPH] = pv_ep_graph,
    [PV_R_STORAGE_GC] = pv_ep_storage_gc,
    [PV_R_DRIVERS_LIST] = pv_ep_drivers_list,
    [PV_R_DRIVERS_LOAD] = pv_ep_drivers_action,
    [PV_R_DRIVERS_UNLOAD] = pv_ep_drivers_action,
    [PV_R_DRIVER_LOAD] = pv_ep_drivers_action,
    [PV_R_DRIVER_UNLOAD] = pv_ep_drivers_action,
};

pv_ctrl_handler pv_ctrl_handler_of(int route_id)
{
	if (route_id < 0 || route_id >= PV_R_COUNT)
		return NULL;
	return handlers[route_id];
}
