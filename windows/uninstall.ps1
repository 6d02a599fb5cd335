<#
.SYNOPSIS
  Removes the tokenplace-gpuhost service and everything install.ps1 made
  for it (Windows PowerShell 5.1, elevated).

.DESCRIPTION
  Reads <InstallDir>\install-state.json (written by install.ps1) and
  takes back exactly what it records:
    * the service (stopped within its grace period) and its Event Log source
    * the inbound firewall rule(s) of this exe
    * the access granted to the service account (checkout, base Python,
      logs\, data directory), by SID
    * the "Log on as a service" right, if install.ps1 granted it (an
      account that had it before keeps it)
  The checkout and its .venv are never deleted. Without -Purge the install
  folder (gpuhost.ini, logs) and the data directory (the model) are kept;
  -Purge deletes the install folder, the logs and the data directory (the
  latter only if install.ps1 created it).
#>
[CmdletBinding()]
param(
    [string]$InstallDir = "$env:ProgramFiles\tokenplace-gpuhost",
    [switch]$Purge
)
$ErrorActionPreference = "Stop"

function Fail([string]$msg) { Write-Host "error: $msg" -ForegroundColor Red; exit 1 }
function Step([string]$msg) { Write-Host "==> $msg" -ForegroundColor Cyan }

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Fail "run this from an elevated PowerShell"
}
$InstallDir = [IO.Path]::GetFullPath($InstallDir)
$exe = Join-Path $InstallDir "tokenplace-gpuhost.exe"
$ini = Join-Path $InstallDir "gpuhost.ini"
$stateFile = Join-Path $InstallDir "install-state.json"
if (-not (Test-Path $exe)) { Fail "$exe not found (use -InstallDir)" }
$state = $null
if (Test-Path $stateFile) {
    $state = Get-Content -Raw $stateFile | ConvertFrom-Json
} else {
    Write-Warning "$stateFile not found (installed by an older install.ps1): access grants and rights are not known and stay"
}
$helper = Join-Path $PSScriptRoot "ServiceLogonRight.ps1"
if (-not (Test-Path $helper)) { $helper = Join-Path $InstallDir "ServiceLogonRight.ps1" }
. $helper

Step "stopping"
& $exe --config $ini stop

Step "removing the firewall rule"
& $exe --config $ini firewall remove
# Rules of this exe under another name (the port changed since `firewall add`).
Get-NetFirewallRule -Group "tokenplace-gpuhost" -ErrorAction SilentlyContinue | Where-Object {
    ($_ | Get-NetFirewallApplicationFilter).Program -eq $exe
} | ForEach-Object {
    Write-Host "removing firewall rule `"$($_.DisplayName)`""
    $_ | Remove-NetFirewallRule
}

if ($state) {
    foreach ($g in @($state.grants)) {
        if (-not $g -or -not (Test-Path $g.path)) { continue }
        Step "removing the access of $($g.sid) from $($g.path)"
        # /T: installs made before the grant was inheritance-only set it on every file.
        & icacls $g.path /remove:g "*$($g.sid)" /T /C /Q | Out-Null
        if ($LASTEXITCODE -ne 0) { Write-Warning "icacls could not remove every entry of $($g.sid) under $($g.path)" }
    }
    if ($state.logon_right_sid) {
        if (Test-ServiceLogonRight $state.logon_right_sid) {
            Step "revoking the right to log on as a service from $($state.account)"
            Revoke-ServiceLogonRight $state.logon_right_sid
        }
    }
}

Step "removing the service and its Event Log source"
& $exe --config $ini uninstall
if ($LASTEXITCODE -ne 0) { Fail "uninstall failed" }
# DeleteService only marks it while a handle is open (services.msc, Get-Service callers).
$name = if ($state) { $state.service } else { "tokenplace-gpuhost" }
$deadline = (Get-Date).AddSeconds(30)
while (Get-Service -Name $name -ErrorAction SilentlyContinue) {
    if ((Get-Date) -gt $deadline) {
        Write-Warning "service $name is marked for deletion; it disappears when the last program holding it (services.msc?) closes"
        break
    }
    Start-Sleep -Milliseconds 500
}

if ($Purge) {
    # Not from inside a folder about to be deleted (this script may run from $InstallDir).
    Set-Location "$env:SystemDrive\"
    if ($state -and $state.data_dir -and (Test-Path $state.data_dir)) {
        if ($state.data_dir_created) {
            Step "deleting the data directory $($state.data_dir)"
            Remove-Item -Recurse -Force $state.data_dir
            # %ProgramData%\tokenplace, when nothing else is in it.
            $parent = Split-Path -Parent $state.data_dir
            if ((Split-Path -Leaf $parent) -eq "tokenplace" -and -not (Get-ChildItem -Force $parent)) { Remove-Item -Force $parent }
        } else {
            Write-Host "kept $($state.data_dir): it existed before install.ps1"
        }
    }
    if ($state -and $state.log_dir -and (Test-Path $state.log_dir)) {
        Step "deleting the logs $($state.log_dir)"
        Remove-Item -Recurse -Force $state.log_dir
    }
    Step "deleting $InstallDir"
    Remove-Item -Recurse -Force $InstallDir
} else {
    Remove-Item -Force $stateFile -ErrorAction SilentlyContinue
    Write-Host "kept $InstallDir (gpuhost.ini, logs)$(if ($state -and $state.data_dir) { " and $($state.data_dir) (the model)" }); -Purge deletes them"
}
