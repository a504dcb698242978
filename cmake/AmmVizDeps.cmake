# AmmVizDeps.cmake - finds SDL2 and SDL2_ttf through pkg-config for viz/.
#
# Sets the option AMM_BUILD_VIZ (default ON when both are found, else OFF with
# a message) and, when found, the imported targets PkgConfig::SDL2 and
# PkgConfig::SDL2_TTF (visible in viz/ and tests/).
include_guard(GLOBAL)

find_package(PkgConfig QUIET)
set(_amm_viz_found FALSE)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(SDL2 QUIET IMPORTED_TARGET sdl2)
  pkg_check_modules(SDL2_TTF QUIET IMPORTED_TARGET SDL2_ttf)
  if(SDL2_FOUND AND SDL2_TTF_FOUND)
    set(_amm_viz_found TRUE)
  endif()
endif()

option(AMM_BUILD_VIZ "Build amm-viz, the SDL2 heap viewer" ${_amm_viz_found})
if(AMM_BUILD_VIZ AND NOT _amm_viz_found)
  message(FATAL_ERROR "AMM_BUILD_VIZ=ON but SDL2/SDL2_ttf were not found through pkg-config: "
                      "apt-get install pkg-config libsdl2-dev libsdl2-ttf-dev (or `make deps`), "
                      "or configure with -DAMM_BUILD_VIZ=OFF.")
elseif(NOT _amm_viz_found)
  message(STATUS "SDL2 or SDL2_ttf not found through pkg-config: amm-viz will not be built "
                 "(apt-get install pkg-config libsdl2-dev libsdl2-ttf-dev, or `make deps`)")
endif()
