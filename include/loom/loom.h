// Umbrella header: everything a Loom user needs.
#pragma once

#include "loom/attention.h"
#include "loom/attributes.h"
#include "loom/call.h"
#include "loom/device.h"
#include "loom/dtype.h"
#include "loom/error.h"
#include "loom/executable.h"
#include "loom/fft.h"
#include "loom/graph.h"
#include "loom/half.h"
#include "loom/ops.h"
#include "loom/package.h"
#include "loom/shape.h"
#include "loom/tensor_data.h"
#include "loom/version.h"
#include "loom/view.h"
