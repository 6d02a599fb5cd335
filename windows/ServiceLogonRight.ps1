<#
.SYNOPSIS
  The "Log on as a service" right (SeServiceLogonRight) of one account,
  read, granted and revoked through the LSA policy API (advapi32
  LsaEnumerateAccountRights / LsaAddAccountRights / LsaRemoveAccountRights).

.DESCRIPTION
  Dot-sourced by install.ps1 and uninstall.ps1. Windows 11 Home has no
  secpol.msc, and CreateService does not grant the right by itself (only
  the Services snap-in does), so a service running as a user account fails
  to start with error 1069 without it. Needs an elevated session.

    Test-ServiceLogonRight   -Sid S-1-5-21-...   -> $true / $false
    Grant-ServiceLogonRight  -Sid S-1-5-21-...
    Revoke-ServiceLogonRight -Sid S-1-5-21-...
    Resolve-AccountSid       -Account PC\owner    -> "S-1-5-21-..."

  Each throws with the Win32 error text when the LSA call fails.
#>

if (-not ([System.Management.Automation.PSTypeName]'TokenPlaceGpuhost.LsaRights').Type) {
    Add-Type -TypeDefinition @'
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Security.Principal;

namespace TokenPlaceGpuhost {
public static class LsaRights {
    [StructLayout(LayoutKind.Sequential)]
    private struct LSA_UNICODE_STRING {
        public ushort Length;
        public ushort MaximumLength;
        public IntPtr Buffer;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct LSA_OBJECT_ATTRIBUTES {
        public int Length;
        public IntPtr RootDirectory;
        public IntPtr ObjectName;
        public uint Attributes;
        public IntPtr SecurityDescriptor;
        public IntPtr SecurityQualityOfService;
    }

    [DllImport("advapi32.dll")]
    private static extern uint LsaOpenPolicy(IntPtr systemName, ref LSA_OBJECT_ATTRIBUTES attributes,
        uint desiredAccess, out IntPtr policyHandle);
    [DllImport("advapi32.dll")]
    private static extern uint LsaEnumerateAccountRights(IntPtr policyHandle, byte[] accountSid,
        out IntPtr userRights, out uint countOfRights);
    [DllImport("advapi32.dll")]
    private static extern uint LsaAddAccountRights(IntPtr policyHandle, byte[] accountSid,
        LSA_UNICODE_STRING[] userRights, uint countOfRights);
    [DllImport("advapi32.dll")]
    private static extern uint LsaRemoveAccountRights(IntPtr policyHandle, byte[] accountSid,
        [MarshalAs(UnmanagedType.U1)] bool allRights, LSA_UNICODE_STRING[] userRights, uint countOfRights);
    [DllImport("advapi32.dll")]
    private static extern uint LsaFreeMemory(IntPtr buffer);
    [DllImport("advapi32.dll")]
    private static extern uint LsaClose(IntPtr objectHandle);
    [DllImport("advapi32.dll")]
    private static extern int LsaNtStatusToWinError(uint status);

    // POLICY_LOOKUP_NAMES | POLICY_CREATE_ACCOUNT: what the three calls need.
    private const uint PolicyAccess = 0x00000800 | 0x00000010;
    // The account has no LSA account object: it holds no rights at all.
    private const uint StatusObjectNameNotFound = 0xC0000034;

    private static void Check(uint status, string call) {
        if (status != 0)
            throw new Win32Exception(LsaNtStatusToWinError(status), call + " failed");
    }

    private static IntPtr Open() {
        LSA_OBJECT_ATTRIBUTES attributes = new LSA_OBJECT_ATTRIBUTES();
        attributes.Length = Marshal.SizeOf(typeof(LSA_OBJECT_ATTRIBUTES));
        IntPtr policy;
        Check(LsaOpenPolicy(IntPtr.Zero, ref attributes, PolicyAccess, out policy), "LsaOpenPolicy");
        return policy;
    }

    private static byte[] SidBytes(string sid) {
        SecurityIdentifier id = new SecurityIdentifier(sid);
        byte[] bytes = new byte[id.BinaryLength];
        id.GetBinaryForm(bytes, 0);
        return bytes;
    }

    public static string[] Enumerate(string sid) {
        IntPtr policy = Open();
        try {
            IntPtr rights;
            uint count;
            uint status = LsaEnumerateAccountRights(policy, SidBytes(sid), out rights, out count);
            if (status == StatusObjectNameNotFound)
                return new string[0];
            Check(status, "LsaEnumerateAccountRights");
            try {
                List<string> names = new List<string>();
                int size = Marshal.SizeOf(typeof(LSA_UNICODE_STRING));
                for (int i = 0; i < count; i++) {
                    LSA_UNICODE_STRING s = (LSA_UNICODE_STRING)Marshal.PtrToStructure(
                        new IntPtr(rights.ToInt64() + (long)i * size), typeof(LSA_UNICODE_STRING));
                    names.Add(Marshal.PtrToStringUni(s.Buffer, s.Length / 2));
                }
                return names.ToArray();
            } finally {
                LsaFreeMemory(rights);
            }
        } finally {
            LsaClose(policy);
        }
    }

    private static void Change(string sid, string right, bool add) {
        LSA_UNICODE_STRING[] names = new LSA_UNICODE_STRING[1];
        names[0].Buffer = Marshal.StringToHGlobalUni(right);
        names[0].Length = (ushort)(right.Length * 2);
        names[0].MaximumLength = (ushort)(right.Length * 2 + 2);
        try {
            IntPtr policy = Open();
            try {
                if (add)
                    Check(LsaAddAccountRights(policy, SidBytes(sid), names, 1), "LsaAddAccountRights");
                else
                    Check(LsaRemoveAccountRights(policy, SidBytes(sid), false, names, 1), "LsaRemoveAccountRights");
            } finally {
                LsaClose(policy);
            }
        } finally {
            Marshal.FreeHGlobal(names[0].Buffer);
        }
    }

    public static void Add(string sid, string right) { Change(sid, right, true); }
    public static void Remove(string sid, string right) { Change(sid, right, false); }
}
}
'@
}

function Resolve-AccountSid([string]$Account) {
    # ".\name" is CreateService's spelling of a local account; NTAccount wants the machine name.
    $name = $Account -replace '^\.\\', "$env:COMPUTERNAME\"
    (New-Object System.Security.Principal.NTAccount($name)).Translate([System.Security.Principal.SecurityIdentifier]).Value
}

function Test-ServiceLogonRight([string]$Sid) {
    [TokenPlaceGpuhost.LsaRights]::Enumerate($Sid) -contains "SeServiceLogonRight"
}

function Grant-ServiceLogonRight([string]$Sid) {
    [TokenPlaceGpuhost.LsaRights]::Add($Sid, "SeServiceLogonRight")
}

function Revoke-ServiceLogonRight([string]$Sid) {
    [TokenPlaceGpuhost.LsaRights]::Remove($Sid, "SeServiceLogonRight")
}
