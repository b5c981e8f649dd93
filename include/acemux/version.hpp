#pragma once
#define ACEMUX_VERSION "0.1.0"
