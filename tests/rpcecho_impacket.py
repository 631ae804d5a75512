"""The rpcecho interface (Samba librpc/idl/echo.idl, 60a15ec5-4de8-11d7-a637-005056a20182 v1.0)
written with Impacket's NDR classes, so tests can talk to rpcgate-echo through an encoder and a
decoder that are not rpcgate's. Impacket ships no echo module; this is one in its own style
(compare impacket/dcerpc/v5/epm.py).

NDR notes (NDR20, what Samba's pidl stubs put on the wire):
  * top-level pointer parameters are [ref] (no referent id); pointers below them follow
    pointer_default(unique) and carry a referent id (TestCall's s2, TestDoublePointer's ** and *);
  * echo_Info / echo_Enum3 are non-encapsulated unions: the uint16 switch value, then the arm at
    the arm's own alignment: pidl's ndr_push_union_align() aligns only in NDR64, and echo.idl has
    no [ms_union]. Impacket's NDRUNION would pad the arm to 4 after the tag; `notAlign = True`
    gives pidl's layout (it matters for echo_info1/2/6 and echo_Enum3's e1 arm);
  * echo_Surrounding is a conformant structure: max_count first, then x, then the uint16s.

Run with /usr/bin/python3 (Debian python3-impacket).
"""
from impacket.dcerpc.v5.dtypes import LPWSTR, NTSTATUS, UCHAR, ULONG, USHORT, WSTR
from impacket.dcerpc.v5.ndr import (NDRCALL, NDRENUM, NDRPOINTER, NDRSTRUCT, NDRUHYPER,
                                    NDRUniConformantArray, NDRUNION)
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.uuid import uuidtup_to_bin

UUID = "60a15ec5-4de8-11d7-a637-005056a20182"
MSRPC_UUID_RPCECHO = uuidtup_to_bin((UUID, "1.0"))

ECHO_ENUM1 = 1
ECHO_ENUM2 = 2


class DCERPCSessionError(DCERPCException):
    pass


# --- types ---------------------------------------------------------------------------------
class BYTE_ARRAY(NDRUniConformantArray):
    item = 'c'


class USHORT_ARRAY(NDRUniConformantArray):
    item = '<H'


class echo_info1(NDRSTRUCT):
    structure = (('v', UCHAR),)


class echo_info2(NDRSTRUCT):
    structure = (('v', USHORT),)


class echo_info3(NDRSTRUCT):
    structure = (('v', ULONG),)


class echo_info4(NDRSTRUCT):
    structure = (('v', NDRUHYPER),)


class echo_info5(NDRSTRUCT):
    structure = (('v1', UCHAR), ('v2', NDRUHYPER))


class echo_info6(NDRSTRUCT):
    structure = (('v1', UCHAR), ('info1', echo_info1))


class echo_info7(NDRSTRUCT):
    structure = (('v1', UCHAR), ('info4', echo_info4))


class echo_Info(NDRUNION):
    notAlign = True  # pidl's NDR20 layout: the arm at its own alignment (see module doc)
    commonHdr = (('tag', USHORT),)
    union = {
        1: ('info1', echo_info1),
        2: ('info2', echo_info2),
        3: ('info3', echo_info3),
        4: ('info4', echo_info4),
        5: ('info5', echo_info5),
        6: ('info6', echo_info6),
        7: ('info7', echo_info7),
    }


class echo_Enum1(NDRENUM):  # enum16
    from enum import Enum

    class enumItems(Enum):
        ECHO_ENUM1 = 1
        ECHO_ENUM2 = 2


class echo_Enum1_32(NDRENUM):  # [v1_enum]: 32 bits
    align = 4
    structure = (('Data', '<L'),)
    from enum import Enum

    class enumItems(Enum):
        ECHO_ENUM1_32 = 1
        ECHO_ENUM2_32 = 2


class echo_Enum2(NDRSTRUCT):
    structure = (('e1', echo_Enum1), ('e2', echo_Enum1_32))


class echo_Enum3(NDRUNION):
    notAlign = True
    commonHdr = (('tag', USHORT),)
    union = {
        ECHO_ENUM1: ('e1', echo_Enum1),
        ECHO_ENUM2: ('e2', echo_Enum2),
    }


class echo_Surrounding(NDRSTRUCT):
    # A conformant structure: Impacket hoists the trailing conformant array's max_count to the
    # front of the structure, as NDR requires.
    structure = (('x', ULONG), ('surrounding', USHORT_ARRAY))


class PUSHORT(NDRPOINTER):
    referent = (('Data', USHORT),)


class PPUSHORT(NDRPOINTER):
    referent = (('Data', PUSHORT),)


# --- operations ----------------------------------------------------------------------------
class echo_AddOne(NDRCALL):
    opnum = 0
    structure = (('in_data', ULONG),)


class echo_AddOneResponse(NDRCALL):
    structure = (('out_data', ULONG),)


class echo_EchoData(NDRCALL):
    opnum = 1
    structure = (('len', ULONG), ('in_data', BYTE_ARRAY))


class echo_EchoDataResponse(NDRCALL):
    structure = (('out_data', BYTE_ARRAY),)


class echo_SinkData(NDRCALL):
    opnum = 2
    structure = (('len', ULONG), ('data', BYTE_ARRAY))


class echo_SinkDataResponse(NDRCALL):
    structure = ()


class echo_SourceData(NDRCALL):
    opnum = 3
    structure = (('len', ULONG),)


class echo_SourceDataResponse(NDRCALL):
    structure = (('data', BYTE_ARRAY),)


class echo_TestCall(NDRCALL):
    opnum = 4
    structure = (('s1', WSTR),)


class echo_TestCallResponse(NDRCALL):
    structure = (('s2', LPWSTR),)


class echo_TestCall2(NDRCALL):
    opnum = 5
    structure = (('level', USHORT),)


class echo_TestCall2Response(NDRCALL):
    structure = (('info', echo_Info), ('ErrorCode', NTSTATUS))


class echo_TestSleep(NDRCALL):
    opnum = 6
    structure = (('seconds', ULONG),)


class echo_TestSleepResponse(NDRCALL):
    structure = (('ErrorCode', ULONG),)


class echo_TestEnum(NDRCALL):
    opnum = 7
    structure = (('foo1', echo_Enum1), ('foo2', echo_Enum2), ('foo3', echo_Enum3))


class echo_TestEnumResponse(NDRCALL):
    structure = (('foo1', echo_Enum1), ('foo2', echo_Enum2), ('foo3', echo_Enum3))


class echo_TestSurrounding(NDRCALL):
    opnum = 8
    structure = (('data', echo_Surrounding),)


class echo_TestSurroundingResponse(NDRCALL):
    structure = (('data', echo_Surrounding),)


class echo_TestDoublePointer(NDRCALL):
    opnum = 9
    structure = (('data', PPUSHORT),)


class echo_TestDoublePointerResponse(NDRCALL):
    structure = (('ErrorCode', USHORT),)


OPNUMS = {
    0: (echo_AddOne, echo_AddOneResponse),
    1: (echo_EchoData, echo_EchoDataResponse),
    2: (echo_SinkData, echo_SinkDataResponse),
    3: (echo_SourceData, echo_SourceDataResponse),
    4: (echo_TestCall, echo_TestCallResponse),
    5: (echo_TestCall2, echo_TestCall2Response),
    6: (echo_TestSleep, echo_TestSleepResponse),
    7: (echo_TestEnum, echo_TestEnumResponse),
    8: (echo_TestSurrounding, echo_TestSurroundingResponse),
    9: (echo_TestDoublePointer, echo_TestDoublePointerResponse),
}


# --- request builders (shared by the vector generator and the integration test) ------------
def add_one(value):
    r = echo_AddOne()
    r['in_data'] = value
    return r


def echo_data(data):
    r = echo_EchoData()
    r['len'] = len(data)
    r['in_data'] = bytes(data)
    return r


def sink_data(data):
    r = echo_SinkData()
    r['len'] = len(data)
    r['data'] = bytes(data)
    return r


def source_data(length):
    r = echo_SourceData()
    r['len'] = length
    return r


def test_call(text):
    r = echo_TestCall()
    r['s1'] = text + '\x00'
    return r


def test_call2(level):
    r = echo_TestCall2()
    r['level'] = level
    return r


def test_sleep(seconds):
    r = echo_TestSleep()
    r['seconds'] = seconds
    return r


def test_enum(foo1, e1, e2, arm):
    """foo1 selects foo3's arm; `arm` is an int (ECHO_ENUM1) or an (e1, e2) pair (ECHO_ENUM2)."""
    r = echo_TestEnum()
    fill_enum(r, foo1, e1, e2, arm)
    return r


def fill_enum(r, foo1, e1, e2, arm):
    """Sets foo1/foo2/foo3 of an echo_TestEnum request or response."""
    r.fields['foo1'].fields['Data'] = foo1
    r['foo2'].fields['e1'].fields['Data'] = e1
    r['foo2'].fields['e2'].fields['Data'] = e2
    r['foo3']['tag'] = foo1
    if foo1 == ECHO_ENUM1:
        r['foo3'].fields['e1'].fields['Data'] = arm
    else:
        r['foo3']['e2'].fields['e1'].fields['Data'] = arm[0]
        r['foo3']['e2'].fields['e2'].fields['Data'] = arm[1]


def test_surrounding(x, values=None):
    r = echo_TestSurrounding()
    r['data']['x'] = x
    r['data']['surrounding'] = list(values if values is not None else [0] * x)
    return r


def test_double_pointer(value, null_level=None, referent_ids=(0x00020000, 0x00020004)):
    """uint16 ***data: null_level 1 makes *data NULL, 2 makes **data NULL, None sends `value`."""
    r = echo_TestDoublePointer()
    outer = r.fields['data']
    if null_level == 1:
        outer.fields['ReferentID'] = 0
        outer.fields['Data'] = b''
        return r
    outer.fields['ReferentID'] = referent_ids[0]
    inner = outer.fields['Data']
    if null_level == 2:
        inner.fields['ReferentID'] = 0
        inner.fields['Data'] = b''
        return r
    inner.fields['ReferentID'] = referent_ids[1]
    inner['Data'] = value
    return r
