# Included by each vendored package's CMakeLists.txt after its find_package() calls.
# The index's ros-* wheels were built in a manylinux container, and their exported CMake
# targets still name that container's Python and NumPy include folders
# (/opt/python/cp311-cp311/...), which exist nowhere else. Drop the include folders that do
# not exist from every imported target (the Python generator adds this interpreter's
# Python and NumPy headers to its own targets), instead of editing the installed wheels.
get_property(imported_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(target IN LISTS imported_targets)
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  if(dirs)
    set(kept "")
    foreach(dir IN LISTS dirs)
      if(EXISTS "${dir}" OR dir MATCHES "^\\$<")
        list(APPEND kept "${dir}")
      endif()
    endforeach()
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${kept}")
  endif()
endforeach()
